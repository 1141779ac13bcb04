// The CPU references of the CUDA kernels agree bit for bit with the codec and the model code
// (the GPU suite then checks each kernel against its reference).

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "qvg/core/codec.h"
#include "qvg/core/kmeans.h"
#include "qvg/core/quant_pack.h"
#include "qvg/core/synthetic.h"
#include "qvg/core/wan_rope.h"
#include "qvg/kernels/qvg_decode.h"
#include "qvg/kernels/qvg_encode.h"
#include "qvg/kernels/rope.h"

namespace qvg {
namespace {

const uint16_t* bf16_ptr(const at::Tensor& t) {
    return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>());
}

TEST(KernelReference, ResidualQuantMatchesTheCodec) {
    core::SyntheticTokens s;
    s.frames = 1;
    s.height = 7;
    s.width = 11;  // 77 tokens
    at::Tensor x = core::synthetic_tokens(s).to(at::kFloat).view({2, 77, 128}).contiguous();
    at::Tensor cent = (at::randn({2, 16, 128}) * 2).to(at::kBFloat16);
    at::Tensor ids = at::randint(0, 16, {2, 77}).to(at::kByte);
    at::Tensor idx = ids.to(at::kLong).unsqueeze(-1).expand({2, 77, 128});
    at::Tensor residual = (x - cent.to(at::kFloat).gather(1, idx)).to(at::kBFloat16).to(at::kFloat);
    int64_t clip_groups = 0, clip_same = 0;
    for (bool stage : {false, true}) {
        for (int bits : {2, 4}) {
            for (int group : {16, 32, 64, 128}) {
                for (int variant = 0; variant < 4; ++variant) {
                    const bool asym = variant % 2 == 1, clip = variant >= 2;
                    const core::GroupQuantSpec spec{bits, group, asym, clip};
                    const core::GroupQuantized expect =
                        core::quantize_groups(stage ? residual : x, spec);
                    at::Tensor codes = at::empty_like(expect.codes),
                               scales = at::empty_like(expect.scales);
                    at::Tensor zeros = at::empty_like(expect.scales);
                    at::Tensor res_sq = at::empty({2, 77}), err_sq = at::empty({2, 77});
                    kernels::ResidualQuantParams p;
                    p.x = x.data_ptr<float>();
                    if (stage) {
                        p.ids = ids.data_ptr<uint8_t>();
                        p.centroids = bf16_ptr(cent);
                        p.num_centroids = 16;
                    }
                    p.groups = 2;
                    p.tokens = 77;
                    p.dim = 128;
                    p.bits = bits;
                    p.group = group;
                    p.asymmetric = asym;
                    p.clip_search = clip;
                    p.codes = codes.data_ptr<uint8_t>();
                    p.scales = scales.data_ptr<uint8_t>();
                    p.zeros = zeros.data_ptr<uint8_t>();
                    p.residual_sq = res_sq.data_ptr<float>();
                    p.error_sq = err_sq.data_ptr<float>();
                    kernels::residual_quant_reference(p);
                    const std::string what = "stage " + std::to_string(stage) + " INT" +
                                             std::to_string(bits) + " G" + std::to_string(group) +
                                             (asym ? " asym" : "") + (clip ? " clip" : "");
                    const core::GroupQuantized got{codes, scales, asym ? zeros : at::Tensor()};
                    if (clip) {
                        // The range search sums each range's error in the kernel's order, the
                        // codec in ATen's: where two ranges tie to rounding either may win. The
                        // choices agree almost everywhere, and never differ by more than
                        // rounding in the error they leave.
                        at::Tensor same = scales.eq(expect.scales);
                        if (asym) same = same & zeros.eq(expect.zeros);
                        clip_groups += same.numel();
                        clip_same += same.sum().item<int64_t>();
                        const at::Tensor in = (stage ? residual : x).to(at::kDouble);
                        auto group_err = [&](const core::GroupQuantized& q) {
                            return (core::dequantize_groups(q, spec).to(at::kDouble) - in)
                                .pow(2)
                                .view({-1, group})
                                .sum(-1);
                        };
                        EXPECT_TRUE(at::allclose(group_err(got), group_err(expect), 1e-5, 1e-9))
                            << what;
                    } else {
                        EXPECT_TRUE(at::equal(codes, expect.codes)) << what;
                        EXPECT_TRUE(at::equal(scales, expect.scales)) << what;
                        if (asym) {
                            EXPECT_TRUE(at::equal(zeros, expect.zeros)) << what;
                        }
                    }
                    // Error sums against the decode of what the reference stored.
                    at::Tensor deq = core::dequantize_groups(got, spec);
                    if (stage) deq = deq + cent.to(at::kFloat).gather(1, idx);
                    at::Tensor err = (x - deq.to(at::kBFloat16).to(at::kFloat)).pow(2).sum(-1);
                    EXPECT_TRUE(at::allclose(err_sq, err, 1e-4, 1e-6)) << what;
                    EXPECT_TRUE(
                        at::allclose(res_sq, (stage ? residual : x).pow(2).sum(-1), 1e-4, 1e-6))
                        << what;
                }
            }
        }
    }
    std::printf("range search: the reference chose the codec's range for %lld of %lld groups\n",
                static_cast<long long>(clip_same), static_cast<long long>(clip_groups));
    EXPECT_GE(static_cast<double>(clip_same), 0.995 * static_cast<double>(clip_groups));
}

// INT4 codebooks widened for the decode: the reference gives the codec's own BF16 centroids.
TEST(KernelReference, Int4CodebookWideningMatchesTheCodec) {
    core::SyntheticTokens s;
    s.frames = 1;
    const at::Tensor x = core::synthetic_tokens(s);  // [1, 2, 1560, 128]
    core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
    cfg.centroids = 30;
    cfg.iterations = 1;
    cfg.codebook_bits = 4;
    const core::EncodedSpan span = core::Codec::create(cfg)->encode(x);
    const core::SpanStage& st = span.stages.front();
    ASSERT_TRUE(st.centroid_scales.defined());
    const at::Tensor expect = core::centroids_bf16(st);  // [1, 2, 30, 128]
    at::Tensor out = at::empty_like(expect);
    kernels::Int4CodebookParams p;
    p.codes = st.centroids.data_ptr<uint8_t>();
    p.scales = st.centroid_scales.data_ptr<uint8_t>();
    p.zeros = st.centroid_zeros.data_ptr<uint8_t>();
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.rows = 2 * 30;
    p.dim = 128;
    kernels::widen_int4_codebook_reference(p);
    EXPECT_TRUE(at::equal(out, expect));
}

TEST(KernelReference, DecodeMatchesTheCodec) {
    core::SyntheticTokens s;
    s.frames = 1;
    at::Tensor x = core::synthetic_tokens(s);  // [1, 2, 1560, 128]
    for (int variant = 0; variant < 3; ++variant) {
        // 0 and 2 stages with BF16 codebooks, 2 stages with FP8 ones read as they are.
        const int stages = variant == 0 ? 0 : 2;
        const bool fp8 = variant == 2;
        core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
        cfg.stages = stages;
        cfg.centroids = 32;
        cfg.iterations = 1;
        cfg.codebook_bits = fp8 ? 8 : 16;
        auto codec = core::Codec::create(cfg);
        core::EncodedSpan span = codec->encode(x);
        at::Tensor expect = codec->decode(span).transpose(1, 2).contiguous();  // [B, N, H, D]
        at::Tensor out = at::empty_like(expect);
        kernels::QvgDecodeParams p;
        p.codes = span.quant.codes.data_ptr<uint8_t>();
        p.scales = span.quant.scales.data_ptr<uint8_t>();
        p.num_stages = stages;
        for (int i = 0; i < stages; ++i) {
            p.ids[i] = span.stages[static_cast<size_t>(i)].ids.data_ptr<uint8_t>();
            const at::Tensor& cent = span.stages[static_cast<size_t>(i)].centroids;
            if (fp8) {
                p.centroids_fp8[i] = cent.data_ptr<uint8_t>();
            } else {
                p.centroids[i] = bf16_ptr(cent);
            }
        }
        p.batch = 1;
        p.heads = 2;
        p.tokens = x.size(2);
        p.dim = 128;
        p.num_centroids = 32;
        p.bits = 2;
        p.group = 64;
        p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
        p.out_stride_b = out.stride(0);
        p.out_stride_n = out.stride(1);
        p.out_stride_h = out.stride(2);
        ASSERT_STREQ(kernels::validate(p), "");
        kernels::qvg_decode_reference(p);
        EXPECT_TRUE(at::equal(out, expect)) << "stages " << stages << (fp8 ? " fp8" : "");
        // Fused with RoPE: the same bits as decoding then rotating.
        core::WanRope rope(128, at::kCPU);
        const auto angles = rope.angles(0, 1, 30, 52);
        at::Tensor cos = angles.cos.contiguous(), sin = angles.sin.contiguous();
        p.rope_cos = cos.data_ptr<float>();
        p.rope_sin = sin.data_ptr<float>();
        kernels::qvg_decode_reference(p);
        EXPECT_TRUE(at::equal(out, core::WanRope::apply(expect, angles)))
            << "stages " << stages << " rope";
        at::Tensor via_codec = at::empty_like(expect);
        codec->decode_into(span, via_codec, &angles);
        EXPECT_TRUE(at::equal(out, via_codec)) << "stages " << stages << " rope";
    }
}

TEST(KernelReference, HostDecodeMatchesTheReference) {
    // Random codes, FP8 scales and zeros (finite values of both signs), ids and codebooks; every
    // bit width, symmetric and asymmetric, 0-2 stages of BF16 or FP8 codebooks, an output with
    // room between heads, in BF16 and widened to float32.
    at::manual_seed(3);
    const auto fp8_bytes = [](at::IntArrayRef shape) {
        return at::randint(0, 0x7f, shape)
            .to(at::kByte)
            .bitwise_or(at::randint(0, 2, shape).to(at::kByte).mul(128));
    };
    const int64_t heads = 3, tokens = 37, dim = 64, centroids = 5;
    for (int bits : {2, 4}) {
        for (int group : {16, 64}) {
            for (int variant = 0; variant < 6; ++variant) {
                const bool asym = variant % 2 == 1;
                const int stages = variant / 2;
                const at::Tensor codes =
                    at::randint(0, 256, {1, heads, tokens, dim * bits / 8}).to(at::kByte);
                const at::Tensor scales = fp8_bytes({1, heads, tokens, dim / group});
                const at::Tensor zeros = fp8_bytes({1, heads, tokens, dim / group});
                std::vector<at::Tensor> ids, cent_bf16, cent_fp8;
                kernels::QvgDecodeParams p;
                p.codes = codes.data_ptr<uint8_t>();
                p.scales = scales.data_ptr<uint8_t>();
                p.zeros = asym ? zeros.data_ptr<uint8_t>() : nullptr;
                p.num_stages = stages;
                for (int st = 0; st < stages; ++st) {
                    ids.push_back(at::randint(0, centroids, {1, heads, tokens}).to(at::kByte));
                    p.ids[st] = ids.back().data_ptr<uint8_t>();
                    if (st == 1) {  // the second stage holds its codebook in FP8
                        cent_fp8.push_back(fp8_bytes({1, heads, centroids, dim}));
                        p.centroids_fp8[st] = cent_fp8.back().data_ptr<uint8_t>();
                    } else {
                        cent_bf16.push_back(
                            at::randn({1, heads, centroids, dim}).to(at::kBFloat16));
                        p.centroids[st] = bf16_ptr(cent_bf16.back());
                    }
                }
                p.batch = 1;
                p.heads = heads;
                p.tokens = tokens;
                p.dim = dim;
                p.num_centroids = centroids;
                p.bits = bits;
                p.group = group;
                p.asymmetric = asym;
                // [B, N, H, D] inside a buffer one head wider: the strides of a history buffer.
                at::Tensor expect = at::zeros({1, tokens, heads + 1, dim}, at::kBFloat16);
                at::Tensor host = at::zeros_like(expect);
                at::Tensor widened = at::zeros({1, tokens, heads + 1, dim}, at::kFloat);
                p.out_stride_b = expect.stride(0);
                p.out_stride_n = expect.stride(1);
                p.out_stride_h = expect.stride(2);
                p.out = reinterpret_cast<uint16_t*>(expect.data_ptr<at::BFloat16>());
                ASSERT_STREQ(kernels::validate(p), "");
                kernels::qvg_decode_reference(p);
                p.out = reinterpret_cast<uint16_t*>(host.data_ptr<at::BFloat16>());
                // In two calls, as threads share a span: the first head, then the rest.
                kernels::qvg_decode_host(p, nullptr, 0, 1);
                kernels::qvg_decode_host(p, nullptr, 1);
                kernels::qvg_decode_host(p, widened.data_ptr<float>());
                const std::string what = "bits " + std::to_string(bits) + " group " +
                                         std::to_string(group) + " asym " + std::to_string(asym) +
                                         " stages " + std::to_string(stages);
                EXPECT_TRUE(at::equal(host.view(at::kShort), expect.view(at::kShort))) << what;
                EXPECT_TRUE(at::equal(widened, expect.to(at::kFloat))) << what;
                // The head left out of the view stays untouched.
                EXPECT_EQ(widened.select(2, heads).abs().sum().item<float>(), 0.0f) << what;
                // With RoPE: the reference's fused rotation in BF16; in float32 what WanRope
                // writes into a float32 output from the decoded BF16 values.
                const core::WanRope rope(dim, at::kCPU);
                const core::RopeAngles angles = rope.angles(2, 1, 1, tokens);
                const at::Tensor cos = angles.cos.contiguous(), sin = angles.sin.contiguous();
                at::Tensor rotated_f32 = at::zeros_like(widened);
                core::WanRope::apply_into(expect.narrow(2, 0, heads), angles,
                                          rotated_f32.narrow(2, 0, heads));
                p.rope_cos = cos.data_ptr<float>();
                p.rope_sin = sin.data_ptr<float>();
                p.out = reinterpret_cast<uint16_t*>(expect.data_ptr<at::BFloat16>());
                kernels::qvg_decode_reference(p);
                p.out = reinterpret_cast<uint16_t*>(host.data_ptr<at::BFloat16>());
                kernels::qvg_decode_host(p);
                kernels::qvg_decode_host(p, widened.data_ptr<float>());
                EXPECT_TRUE(at::equal(host.view(at::kShort), expect.view(at::kShort)))
                    << what << " rope";
                EXPECT_TRUE(at::equal(widened, rotated_f32)) << what << " rope";
            }
        }
    }
}

// The host encode gives the reference's bits: codes, scales, zero points and the three sums,
// with and without a stage and the range search, from float32 and BF16, in one call or split
// into row ranges as threads run it.
TEST(KernelReference, HostEncodeMatchesTheReference) {
    const int64_t groups = 3, tokens = 37;
    for (int64_t dim : {64, 128}) {
        // Video-like values with some rows tiny (their FP8 scale rounds to 0) and some zero.
        at::Tensor x = at::randn({groups, tokens, dim}) * at::rand({groups, tokens, 1}) * 3;
        x.select(1, 3).mul_(1e-4f);
        x.select(1, 5).zero_();
        x.select(1, 7).narrow(-1, 0, 8).fill_(40.0f);
        const at::Tensor x_bf16 = x.to(at::kBFloat16);
        const at::Tensor cent = (at::randn({groups, 16, dim}) * 2).to(at::kBFloat16);
        const at::Tensor ids = at::randint(0, 16, {groups, tokens}).to(at::kByte);
        for (int bits : {2, 4}) {
            for (int group : {8, 16, 32, 64}) {
                for (int variant = 0; variant < 8; ++variant) {
                    const bool asym = variant & 1, clip = variant & 2, stage = variant & 4;
                    for (bool bf16_in : {false, true}) {
                        auto run = [&](bool host, std::vector<at::Tensor>& out) {
                            out = {at::zeros({groups, tokens, dim * bits / 8}, at::kByte),
                                   at::zeros({groups, tokens, dim / group}, at::kByte),
                                   at::zeros({groups, tokens, dim / group}, at::kByte),
                                   at::zeros({3, groups, tokens})};
                            kernels::ResidualQuantParams p;
                            if (bf16_in) {
                                p.x_bf16 = bf16_ptr(x_bf16);
                            } else {
                                p.x = x.data_ptr<float>();
                            }
                            if (stage) {
                                p.ids = ids.data_ptr<uint8_t>();
                                p.centroids = bf16_ptr(cent);
                                p.num_centroids = 16;
                            }
                            p.groups = groups;
                            p.tokens = tokens;
                            p.dim = dim;
                            p.bits = bits;
                            p.group = group;
                            p.asymmetric = asym;
                            p.clip_search = clip;
                            p.codes = out[0].data_ptr<uint8_t>();
                            p.scales = out[1].data_ptr<uint8_t>();
                            p.zeros = out[2].data_ptr<uint8_t>();
                            p.residual_sq = out[3].data_ptr<float>();
                            p.error_sq = p.residual_sq + groups * tokens;
                            p.input_sq = p.error_sq + groups * tokens;
                            if (!host) {
                                kernels::residual_quant_reference(p);
                                return;
                            }
                            ASSERT_TRUE(kernels::residual_quant_host_takes(p));
                            kernels::residual_quant_host(p, 0, 50);
                            kernels::residual_quant_host(p, 50);
                        };
                        std::vector<at::Tensor> expect, got;
                        run(false, expect);
                        run(true, got);
                        const std::string what =
                            fmt::format("D{} INT{} G{} asym {} clip {} stage {} bf16 {}", dim, bits,
                                        group, asym, clip, stage, bf16_in);
                        EXPECT_TRUE(at::equal(got[0], expect[0])) << what << " codes";
                        EXPECT_TRUE(at::equal(got[1], expect[1])) << what << " scales";
                        EXPECT_TRUE(at::equal(got[2], expect[2])) << what << " zeros";
                        EXPECT_TRUE(at::equal(got[3], expect[3])) << what << " sums";
                    }
                }
            }
        }
    }
    float value = 0.0f;
    uint8_t byte = 0;
    kernels::ResidualQuantParams odd;
    odd.x = &value;
    odd.codes = &byte;
    odd.scales = &byte;
    odd.dim = 64;
    odd.group = 16;
    EXPECT_TRUE(kernels::residual_quant_host_takes(odd));
    odd.dim = 48;
    odd.group = 24;  // three runs of 8: the butterfly needs a power of two
    EXPECT_FALSE(kernels::residual_quant_host_takes(odd));
}

TEST(KernelReference, RopeMatchesWanRope) {
    core::WanRope rope(128, at::kCPU);
    const auto angles = rope.angles(std::vector<int64_t>{3, 4, 9}, 5, 7);  // 105 tokens
    at::Tensor x = at::randn({2, 105, 3, 128}).to(at::kBFloat16);
    at::Tensor expect = core::WanRope::apply(x, angles);
    at::Tensor out = at::empty_like(x);
    at::Tensor cos = angles.cos.contiguous(), sin = angles.sin.contiguous();
    kernels::RopeParams p;
    p.x = bf16_ptr(x);
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.cos = cos.data_ptr<float>();
    p.sin = sin.data_ptr<float>();
    p.batch = 2;
    p.tokens = 105;
    p.heads = 3;
    p.dim = 128;
    p.x_stride_b = x.stride(0);
    p.x_stride_l = x.stride(1);
    p.x_stride_h = x.stride(2);
    p.out_stride_b = out.stride(0);
    p.out_stride_l = out.stride(1);
    p.out_stride_h = out.stride(2);
    kernels::rope_reference(p);
    EXPECT_TRUE(at::equal(out, expect));
}

TEST(KernelReference, KMeansUpdateMatchesTheCodecOrder) {
    at::Tensor xb = at::randn({3, 500, 128}).to(at::kBFloat16);  // k-means inputs are BF16 values
    at::Tensor x = xb.to(at::kFloat);
    at::Tensor ids = at::randint(0, 40, {3, 500});
    at::Tensor old = at::randn({3, 48, 128}).to(at::kBFloat16);  // clusters 40..47 stay empty
    // The codec's CPU update: sequential index_add in token order.
    at::Tensor flat = (ids + at::arange(3).mul(48).unsqueeze(1)).reshape({-1});
    at::Tensor sums =
        at::zeros({3 * 48, 128}).index_add_(0, flat, x.reshape({-1, 128})).view({3, 48, 128});
    at::Tensor counts = at::bincount(flat, {}, 3 * 48).view({3, 48}).to(at::kFloat);
    at::Tensor expect = at::where(counts.gt(0).unsqueeze(-1),
                                  sums / counts.clamp_min(1).unsqueeze(-1), old.to(at::kFloat))
                            .to(at::kBFloat16);
    at::Tensor ids8 = ids.to(at::kByte);
    at::Tensor out = at::empty_like(old);
    kernels::KMeansUpdateParams p;
    p.x = bf16_ptr(xb);
    p.ids = ids8.data_ptr<uint8_t>();
    p.old = bf16_ptr(old);
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.groups = 3;
    p.tokens = 500;
    p.centroids = 48;
    p.dim = 128;
    kernels::kmeans_update_reference(p);
    EXPECT_TRUE(at::equal(out, expect));
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

// Small integers: every dot product and norm is exact in fp32 whatever the summation order, so
// the kernel's reference and the codec's CPU assignment must agree bit for bit, ties included.
TEST(KernelReference, AssignMatchesTheCpuAssignment) {
    at::manual_seed(7);
    for (int64_t dim : {64, 128, 256}) {
        at::Tensor x = at::randint(-4, 5, {2, 300, dim}).to(at::kBFloat16);
        at::Tensor c = at::randint(-4, 5, {2, 64, dim}).to(at::kBFloat16);
        c.narrow(1, 10, 1).copy_(c.narrow(1, 3, 1));  // a duplicated centroid: ties go to 3
        x.narrow(1, 0, 1).copy_(c.narrow(1, 3, 1));   // ... and a token sitting on it
        at::Tensor ids = at::empty({2, 300}, at::kLong), dist = at::empty({2, 300});
        kernels::AssignParams p;
        p.x = bf16_ptr(x);
        p.centroids = bf16_ptr(c);
        p.ids = ids.data_ptr<int64_t>();
        p.dist = dist.data_ptr<float>();
        p.groups = 2;
        p.tokens = 300;
        p.num_centroids = 64;
        p.dim = dim;
        kernels::assign_reference(p);
        auto [expect_ids, expect_dist] = core::assign_nearest_with_distance(x.to(at::kFloat), c);
        EXPECT_TRUE(at::equal(ids, expect_ids)) << dim;
        EXPECT_TRUE(at::equal(dist, expect_dist)) << dim;
        EXPECT_FALSE(ids.eq(10).any().item<bool>());
        EXPECT_EQ(ids[0][0].item<int64_t>(), 3);
        EXPECT_EQ(dist[0][0].item<float>(), 0.0f);
    }
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

// The device initialisation draws what the codec's Rng draws: kmeans_init on the CPU and the
// kernel's reference pick the same tokens, for awkward sizes and C = N (every token).
TEST(KernelReference, KMeansInitMatchesTheCodecStart) {
    at::manual_seed(11);
    for (int64_t n : {1, 7, 256, 1031})
        for (int64_t c : {1, 5, 256}) {
            if (c > n) continue;
            for (uint64_t seed : {0ull, 42ull}) {
                at::Tensor x = at::randn({3, n, 64}).to(at::kBFloat16);
                auto reference = [&](int64_t period) {
                    at::Tensor out = at::empty({3, c, 64}, at::kBFloat16);
                    kernels::KMeansInitParams p;
                    p.x = bf16_ptr(x);
                    p.centroids = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
                    p.groups = 3;
                    p.tokens = n;
                    p.num_centroids = c;
                    p.dim = 64;
                    p.seed = seed;
                    p.seed_period = period;
                    kernels::kmeans_init_reference(p);
                    return out;
                };
                const at::Tensor expect = core::kmeans_init(x, c, seed);
                EXPECT_TRUE(at::equal(reference(0), expect))
                    << "N" << n << " C" << c << " seed " << seed;
                // Groups in items of 2 (seed_period): group 2 draws as a lone group 0 of its
                // own rows would, groups 0 and 1 as before.
                const at::Tensor periodic = core::kmeans_init(x, c, seed, 2);
                EXPECT_TRUE(at::equal(reference(2), periodic)) << "N" << n << " C" << c;
                EXPECT_TRUE(at::equal(periodic.narrow(0, 0, 2), expect.narrow(0, 0, 2)));
                EXPECT_TRUE(at::equal(periodic.narrow(0, 2, 1),
                                      core::kmeans_init(x.narrow(0, 2, 1), c, seed)))
                    << "N" << n << " C" << c;
                // ... and kmeans() without iterations starts from them.
                core::KMeansOptions opt;
                opt.centroids = c;
                opt.iterations = 0;
                opt.seed = seed;
                EXPECT_TRUE(at::equal(core::kmeans(x, opt).centroids, expect));
            }
        }
}

// Reseeding: the kernel's reference replaces the same rows as the codec's ATen version, with
// tied distances (ties go to the lower token) and groups with and without empty clusters.
TEST(KernelReference, KMeansReseedMatchesTheCodec) {
    at::manual_seed(12);
    const int64_t g = 3, n = 700, c = 64, d = 128;
    at::Tensor x = at::randn({g, n, d}).to(at::kBFloat16);
    at::Tensor ids = at::randint(0, 50, {g, n});  // clusters 50.. empty in every group
    ids[1] = at::arange(n) % c;                   // ... but none empty in group 1
    at::Tensor dist = at::randint(0, 20, {g, n}).to(at::kFloat);  // many ties
    at::Tensor cent = at::randn({g, c, d}).to(at::kBFloat16);
    const at::Tensor expect = core::kmeans_reseed_empty(x, ids, dist, cent);
    at::Tensor counts =
        at::zeros({g, c}, at::kLong).scatter_add_(1, ids, at::ones_like(ids)).to(at::kInt);
    at::Tensor out = cent.clone();
    kernels::KMeansReseedParams p;
    p.x = bf16_ptr(x);
    p.counts = counts.data_ptr<int32_t>();
    p.dist = dist.data_ptr<float>();
    p.centroids = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.groups = g;
    p.tokens = n;
    p.num_centroids = c;
    p.dim = d;
    kernels::kmeans_reseed_reference(p);
    EXPECT_TRUE(at::equal(out, expect));
    EXPECT_TRUE(at::equal(out[1], cent[1]));
    EXPECT_FALSE(at::equal(out[0], cent[0]));
}

// The update's member counts and the quantizer's ||x||^2, which the device k-means and the
// codec's telemetry use.
TEST(KernelReference, UpdateCountsAndInputSumsAreExact) {
    at::manual_seed(13);
    at::Tensor x = at::randn({2, 300, 64}).to(at::kBFloat16);
    at::Tensor ids = at::randint(0, 30, {2, 300}).to(at::kByte);
    at::Tensor old = at::randn({2, 32, 64}).to(at::kBFloat16);
    at::Tensor out = at::empty_like(old);
    at::Tensor counts = at::empty({2, 32}, at::kInt);
    kernels::KMeansUpdateParams u;
    u.x = bf16_ptr(x);
    u.ids = ids.data_ptr<uint8_t>();
    u.old = bf16_ptr(old);
    u.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    u.counts = counts.data_ptr<int32_t>();
    u.groups = 2;
    u.tokens = 300;
    u.centroids = 32;
    u.dim = 64;
    kernels::kmeans_update_reference(u);
    const at::Tensor ids64 = ids.to(at::kLong);
    EXPECT_TRUE(at::equal(
        counts,
        at::zeros({2, 32}, at::kLong).scatter_add_(1, ids64, at::ones_like(ids64)).to(at::kInt)));

    at::Tensor xf = x.to(at::kFloat);
    at::Tensor codes = at::empty({2, 300, 16}, at::kByte),
               scales = at::empty({2, 300, 1}, at::kByte);
    at::Tensor in_sq = at::empty({2, 300});
    kernels::ResidualQuantParams q;
    q.x = xf.data_ptr<float>();
    q.groups = 2;
    q.tokens = 300;
    q.dim = 64;
    q.codes = codes.data_ptr<uint8_t>();
    q.scales = scales.data_ptr<uint8_t>();
    q.input_sq = in_sq.data_ptr<float>();
    kernels::residual_quant_reference(q);
    EXPECT_TRUE(at::allclose(in_sq, xf.pow(2).sum(-1), 1e-5, 1e-6));
}

}  // namespace
}  // namespace qvg
