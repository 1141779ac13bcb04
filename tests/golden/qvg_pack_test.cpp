// Bit-exact parity with the QVG reference kernels (tests/data/qvg_pack, see its config.json).

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/codec.h"
#include "qvg/core/fp8.h"
#include "qvg/core/quant_pack.h"
#include "qvg/core/safetensors.h"
#include "test_util.h"

namespace qvg::core {
namespace {

std::shared_ptr<const SafetensorsFile> fixture() {
    static auto file = SafetensorsFile::open(test_data("qvg_pack/io.safetensors"));
    return file;
}

at::Tensor golden(const std::string& name) { return fixture()->tensor(name); }

// Counts positions where two tensors differ bitwise (same dtype and shape).
int64_t bit_mismatches(const at::Tensor& a, const at::Tensor& b) {
    EXPECT_EQ(a.sizes(), b.sizes());
    EXPECT_EQ(a.scalar_type(), b.scalar_type());
    at::Tensor ua = a.contiguous().view(at::kByte);
    at::Tensor ub = b.contiguous().view(at::kByte);
    return ua.ne(ub).sum().item<int64_t>();
}

struct PackCase {
    const char* name;
    int bits;
    int group;
};

class QvgPackParity : public ::testing::TestWithParam<PackCase> {};

TEST_P(QvgPackParity, CodesAndScalesAreBitExact) {
    const PackCase c = GetParam();
    const std::string p = std::string("pack/") + c.name + "/";
    GroupQuantized q = quantize_groups(golden("pack/x"), {c.bits, c.group, false});
    EXPECT_EQ(bit_mismatches(q.scales, golden(p + "scales_u8")), 0) << c.name;
    EXPECT_EQ(bit_mismatches(q.codes, golden(p + "codes")), 0) << c.name;
    EXPECT_TRUE(at::equal(fp8_e4m3_decode(q.scales), golden(p + "scales_f32"))) << c.name;
}

TEST_P(QvgPackParity, DequantAndAccumulateAreBitExact) {
    const PackCase c = GetParam();
    const std::string p = std::string("pack/") + c.name + "/";
    const GroupQuantSpec spec{c.bits, c.group, false};
    GroupQuantized q{golden(p + "codes"), golden(p + "scales_u8"), {}};
    at::Tensor deq = dequantize_groups(q, spec);
    EXPECT_EQ(bit_mismatches(deq, golden(p + "deq_f32")), 0);
    EXPECT_EQ(bit_mismatches(deq.to(at::kBFloat16), golden(p + "deq_bf16")), 0);

    // Through the codec: scalar codes plus one stage of centroids.
    CodecConfig cfg = default_codec_config(CodecMethod::kQvg);
    cfg.bits = c.bits;
    cfg.group = c.group;
    auto codec = Codec::create(cfg);
    EncodedSpan span;
    span.config = cfg;
    span.shape = {1, 2, 64, 128};
    span.dtype = at::kBFloat16;
    span.quant = q;
    span.stages.push_back({golden("pack/ids"), golden("pack/centroids")});
    at::Tensor acc = codec->decode_float(span);
    EXPECT_EQ(bit_mismatches(acc, golden(p + "acc_f32")), 0);
    EXPECT_EQ(bit_mismatches(codec->decode(span), golden(p + "acc_bf16")), 0);
}

INSTANTIATE_TEST_SUITE_P(Reference, QvgPackParity,
                         ::testing::Values(PackCase{"int2_g64", 2, 64}, PackCase{"int2_g16", 2, 16},
                                           PackCase{"int4_g64", 4, 64},
                                           PackCase{"int4_g16", 4, 16}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(QvgKMeansParity, DecompressOfReferenceSpanIsBitExact) {
    CodecConfig cfg = default_codec_config(CodecMethod::kQvg);
    auto codec = Codec::create(cfg);
    EncodedSpan span;
    span.config = cfg;
    span.shape = {1, 2, 1024, 128};
    span.dtype = at::kBFloat16;
    span.quant = {golden("kmeans/k_codes"), golden("kmeans/k_scales_u8"), {}};
    span.stages.push_back({golden("kmeans/k_ids"), golden("kmeans/k_centroids")});
    EXPECT_EQ(bit_mismatches(codec->decode(span), golden("kmeans/k_recon")), 0);
}

TEST(QvgKMeansParity, ReferenceQuantOfItsOwnResidualIsReproduced) {
    // Given the reference's ids and centroids, our residual quantization gives its codes.
    at::Tensor x = golden("kmeans/k_in");
    at::Tensor idx = golden("kmeans/k_ids").to(at::kLong).unsqueeze(-1).expand({1, 2, 1024, 128});
    at::Tensor picked = golden("kmeans/k_centroids").to(at::kFloat).gather(2, idx);
    at::Tensor residual = (x.to(at::kFloat) - picked).to(at::kBFloat16);
    GroupQuantized q = quantize_groups(residual, {2, 64, false});
    EXPECT_EQ(bit_mismatches(q.codes, golden("kmeans/k_codes")), 0);
    EXPECT_EQ(bit_mismatches(q.scales, golden("kmeans/k_scales_u8")), 0);
}

TEST(QvgKMeansParity, OurCompressionIsNoWorseThanTheReference) {
    // Reference (config.json checks.kmeans_compress_decompress): K rel L2 0.16124658 with
    // 256 centroids, 1 stage, 2 iterations, INT2, group 64.
    constexpr double kReferenceRelL2 = 0.16124658277186993;
    at::Tensor x = golden("kmeans/k_in");
    for (uint64_t seed : {0ull, 1ull, 2ull}) {
        CodecConfig cfg = default_codec_config(CodecMethod::kQvg);
        cfg.seed = seed;
        auto codec = Codec::create(cfg);
        EncodedSpan span = codec->encode(x);
        const double err =
            (codec->decode(span).to(at::kDouble) - x.to(at::kDouble)).norm().item<double>() /
            x.to(at::kDouble).norm().item<double>();
        EXPECT_NEAR(err, span.rel_error, 1e-6);  // telemetry sums squares in fp32
        EXPECT_LE(err, kReferenceRelL2) << "seed " << seed;
        RecordProperty("rel_l2_seed" + std::to_string(seed), std::to_string(err));
        std::printf(
            "QVG INT2 G64 S1 on the reference k-means input, seed %llu: rel L2 %.5f (reference "
            "%.5f)\n",
            static_cast<unsigned long long>(seed), err, kReferenceRelL2);
    }
}

}  // namespace
}  // namespace qvg::core
