#include <cmath>
#include <cstring>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "codec_rows.h"

#include "qvg/core/codec.h"
#include "qvg/core/error.h"
#include "qvg/core/fp8.h"
#include "qvg/core/kmeans.h"
#include "qvg/core/quant_pack.h"
#include "qvg/core/synthetic.h"
#include "qvg/core/wan_rope.h"

namespace qvg::core {
namespace {

// Two frames of 30x52 tokens: small enough for CI, large enough for 256 centroids.
at::Tensor tokens(KVRole role, int64_t first_frame = 0, int64_t frames = 2, uint64_t seed = 7) {
    SyntheticTokens s;
    s.frames = frames;
    s.first_frame = first_frame;
    s.role = role;
    s.seed = seed;
    return synthetic_tokens(s);
}

double rel_error(const at::Tensor& x, const at::Tensor& y) {
    return (x.to(at::kDouble) - y.to(at::kDouble)).norm().item<double>() /
           x.to(at::kDouble).norm().item<double>();
}

void expect_error_mentions(const std::function<void()>& f, const std::string& what) {
    try {
        f();
        ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
}

TEST(Fp8, ScalarAndTensorConversionsAgreeOnEveryEdge) {
    std::vector<float> values = {0.0f,
                                 -0.0f,
                                 448.0f,
                                 449.0f,
                                 463.9f,
                                 464.0f,
                                 500.0f,
                                 1e9f,
                                 -1000.0f,
                                 std::ldexp(1.0f, -10),
                                 std::ldexp(1.5f, -10),
                                 std::ldexp(1.0f, -9),
                                 std::ldexp(1.0f, -6),
                                 std::ldexp(0.9375f, -6),
                                 0.0015f,
                                 1.0f / 7.0f,
                                 1.0625f,
                                 1.1875f,
                                 3.0f / 7.0f * 5000.0f};
    at::Tensor r = at::rand({4000}) * 24 - 14;  // exponents from 2^-14 to 2^10, both signs
    at::Tensor random = at::pow(2.0, r) * (at::rand({4000}).gt(0.5).to(at::kFloat) * 2 - 1);
    for (int64_t i = 0; i < random.numel(); ++i) values.push_back(random[i].item<float>());
    at::Tensor t = at::tensor(values);
    at::Tensor bits = fp8_e4m3_encode(t);
    for (size_t i = 0; i < values.size(); ++i) {
        ASSERT_EQ(fp8_e4m3_from_float(values[i]), bits[static_cast<int64_t>(i)].item<uint8_t>())
            << "value " << values[i];
    }
    EXPECT_EQ(fp8_e4m3_from_float(500.0f), 0x7e);  // saturates at 448
    EXPECT_EQ(fp8_e4m3_from_float(-1e9f), 0xfe);
    EXPECT_EQ(fp8_e4m3_from_float(std::ldexp(1.0f, -10)), 0x00);  // tie with 0 rounds to even
    EXPECT_EQ(fp8_e4m3_from_float(std::ldexp(1.5f, -10)), 0x01);  // smallest subnormal
    for (int b = 0; b < 256; ++b) {
        if ((b & 0x7f) == 0x7f) continue;  // NaN
        EXPECT_EQ(fp8_e4m3_from_float(fp8_e4m3_to_float(static_cast<uint8_t>(b))),
                  b == 0x80 ? 0x80 : b);
    }
    EXPECT_TRUE(
        at::equal(fp8_e4m3_decode(bits), at::tensor(std::vector<float>(values.size()))
                                             .copy_(bits.view(at::kFloat8_e4m3fn).to(at::kFloat))));
}

TEST(QuantPack, RoundHalfAwayIsExact) {
    at::Tensor x = at::tensor({0.49999997f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, -0.49999997f, 0.0f});
    at::Tensor expect = at::tensor({0.0f, 1.0f, -1.0f, 2.0f, 3.0f, -3.0f, 0.0f, 0.0f});
    EXPECT_TRUE(at::equal(round_half_away(x), expect)) << round_half_away(x);
}

TEST(QuantPack, PackUnpackRoundTrips) {
    for (int bits : {2, 4}) {
        at::Tensor u = at::randint(0, (1 << bits) - 1, {3, 5, 128}).to(at::kByte);
        at::Tensor packed = pack_codes(u, bits);
        EXPECT_EQ(packed.size(-1), 128 * bits / 8);
        EXPECT_TRUE(at::equal(unpack_codes(packed, bits), u));
    }
    // First element in the most significant bits.
    at::Tensor u = at::tensor({2, 1, 0, 2}, at::kByte);
    EXPECT_EQ(pack_codes(u, 2).item<uint8_t>(), (2 << 6) | (1 << 4) | (0 << 2) | 2);
}

TEST(QuantPack, AsymmetricReconstructsWithinItsRoundingBound) {
    at::manual_seed(1);
    at::Tensor x = at::randn({4, 2, 128}) * 3 + 5;  // offset data: the case asymmetric serves
    for (int bits : {2, 4}) {
        const float levels = static_cast<float>((1 << bits) - 1);
        GroupQuantSpec spec{bits, 64, true};
        GroupQuantized q = quantize_groups(x, spec);
        at::Tensor y = dequantize_groups(q, spec);
        at::Tensor xg = x.view({4, 2, 2, 64});
        at::Tensor mn = xg.amin(-1), mx = xg.amax(-1);
        at::Tensor step = fp8_e4m3_decode(q.scales);
        // Half a step, plus what FP8 rounding of the zero point and of the scale can move the
        // grid (at most `levels` steps away from the zero point).
        at::Tensor bound = step * 0.5 + (fp8_e4m3_decode(q.zeros) - mn).abs() +
                           levels * ((mx - mn) / levels - step).abs() + 1e-6;
        at::Tensor err = (x - y).view({4, 2, 2, 64}).abs().amax(-1);
        EXPECT_TRUE((err <= bound).all().item<bool>()) << bits << "\n" << err << bound;
    }
}

// The range search keeps, per group, min-max or a narrower range of less squared error: never
// worse than min-max, clearly better at 2 bits on bell-shaped data (the extremes of 64 draws
// spread 4 levels too far apart), stored in the same bytes and decoded by the same rule.
TEST(QuantPack, RangeSearchNeverLosesToMinMax) {
    at::manual_seed(3);
    at::Tensor x = at::randn({32, 4, 128});
    x.index_put_({0, 0, 5}, 40.0f);  // an outlier: its group is better off clipped too
    for (bool asymmetric : {false, true}) {
        for (int bits : {2, 4}) {
            for (int group : {16, 64}) {
                GroupQuantSpec plain{bits, group, asymmetric};
                GroupQuantSpec search = plain;
                search.clip_search = true;
                const GroupQuantized a = quantize_groups(x, plain);
                const GroupQuantized b = quantize_groups(x, search);
                EXPECT_EQ(a.nbytes(), b.nbytes());
                auto group_sq = [&](const GroupQuantized& q, const GroupQuantSpec& spec) {
                    return (dequantize_groups(q, spec) - x).pow(2).view({-1, group}).sum(-1);
                };
                const at::Tensor ea = group_sq(a, plain), eb = group_sq(b, search);
                EXPECT_TRUE((eb <= ea * (1 + 1e-6) + 1e-9).all().item<bool>())
                    << "asym " << asymmetric << " INT" << bits << " G" << group;
                const double ratio = eb.sum().item<double>() / ea.sum().item<double>();
                if (bits == 2) {
                    EXPECT_LT(ratio, asymmetric ? 0.8 : 0.9)
                        << "asym " << asymmetric << " G" << group;
                } else {
                    EXPECT_LT(ratio, 1.0) << "asym " << asymmetric << " INT4 G" << group;
                }
            }
        }
    }
    // Through a codec: same bytes as without the search, less error, for QVG and every baseline
    // quantizer.
    at::Tensor keys = tokens(KVRole::kKey);
    for (CodecMethod m :
         {CodecMethod::kQvg, CodecMethod::kRtn, CodecMethod::kKivi, CodecMethod::kQuarot}) {
        CodecConfig cfg = default_codec_config(m);
        cfg.centroids = 16;
        CodecConfig clipped = cfg;
        clipped.clip_search = true;
        EXPECT_NE(clipped.describe().find(" clip"), std::string::npos) << clipped.describe();
        const EncodedSpan p = Codec::create(cfg)->encode(keys);
        const EncodedSpan c = Codec::create(clipped)->encode(keys);
        EXPECT_EQ(p.bytes(), c.bytes()) << clipped.describe();
        EXPECT_LT(c.rel_error, p.rel_error) << clipped.describe();
    }
    CodecConfig bad = default_codec_config(CodecMethod::kFp8);
    bad.clip_search = true;
    expect_error_mentions([&] { Codec::create(bad); }, "range search");
}

TEST(Codec, ErrorNeverRisesWithMoreStages) {
    for (KVRole role : {KVRole::kKey, KVRole::kValue}) {
        at::Tensor x = tokens(role);
        double previous = 1e9;
        for (int s = 0; s <= 4; ++s) {
            CodecConfig cfg = default_codec_config(CodecMethod::kQvg);
            cfg.stages = s;
            cfg.group = 16;
            EncodedSpan span = Codec::create(cfg)->encode(x, {role, 1, nullptr});
            EXPECT_LE(span.rel_error, previous) << "stages " << s;
            ASSERT_EQ(span.stage_rel_error.size(), static_cast<size_t>(s));
            for (int i = 1; i < s; ++i)
                EXPECT_LE(span.stage_rel_error[i], span.stage_rel_error[i - 1]);
            previous = span.rel_error;
        }
    }
}

TEST(Codec, WarmStartIsNeverWorseAtEqualIterations) {
    for (uint64_t seed : {1ull, 2ull, 3ull}) {
        CodecConfig cfg = default_codec_config(CodecMethod::kQvg);
        cfg.iterations = 2;
        auto codec = Codec::create(cfg);
        EncodedSpan first =
            codec->encode(tokens(KVRole::kKey, 0, 2, seed), {KVRole::kKey, 11, nullptr});
        at::Tensor next = tokens(KVRole::kKey, 2, 2, seed);
        EncodedSpan cold = codec->encode(next, {KVRole::kKey, 12, nullptr});
        EncodedSpan warm = codec->encode(next, {KVRole::kKey, 12, &first});
        EXPECT_LE(warm.stage_rel_error[0], cold.stage_rel_error[0]) << "seed " << seed;
        EXPECT_LE(warm.rel_error, cold.rel_error) << "seed " << seed;
    }
}

TEST(Codec, EncodingIsDeterministicPerSeed) {
    at::Tensor x = tokens(KVRole::kValue);
    auto codec = Codec::create(default_codec_config(CodecMethod::kQvg));
    EncodedSpan a = codec->encode(x, {KVRole::kValue, 5, nullptr});
    EncodedSpan b = codec->encode(x, {KVRole::kValue, 5, nullptr});
    EncodedSpan c = codec->encode(x, {KVRole::kValue, 6, nullptr});
    EXPECT_TRUE(at::equal(a.stages[0].ids, b.stages[0].ids));
    EXPECT_TRUE(at::equal(a.stages[0].centroids, b.stages[0].centroids));
    EXPECT_TRUE(at::equal(a.quant.codes, b.quant.codes));
    EXPECT_FALSE(at::equal(a.stages[0].ids, c.stages[0].ids));
}

// Walks side by side (batch rows) are each encoded as they would be alone: the same first
// centroids per head, and k-means runs until every row has converged. Also the warm start.
TEST(Codec, EachBatchRowEncodesAsItWouldAlone) {
    at::manual_seed(9);
    const at::Tensor x = at::randn({2, 3, 512, 64}).to(at::kBFloat16);
    const at::Tensor next = (x + 0.1 * at::randn_like(x.to(at::kFloat))).to(at::kBFloat16);
    CodecConfig cfg = default_codec_config(CodecMethod::kQvg);
    cfg.centroids = 16;
    cfg.iterations = 8;  // long enough for the early stop to matter
    cfg.asymmetric = true;
    cfg.clip_search = true;
    auto codec = Codec::create(cfg);
    test::expect_rows_encode_alone(*codec, x, next);
}

TEST(Codec, ByteCountEqualsTheFormulaForEveryMethod) {
    for (int64_t n : {256, 1037}) {
        at::Tensor x = at::randn({2, 3, n, 128}).to(at::kBFloat16);
        for (CodecMethod m : {CodecMethod::kBf16, CodecMethod::kFp8, CodecMethod::kRtn,
                              CodecMethod::kQvg, CodecMethod::kKivi, CodecMethod::kQuarot}) {
            for (int bits : {2, 4}) {
                for (int group : {16, 128}) {
                    CodecConfig cfg = default_codec_config(m);
                    cfg.bits = bits;
                    cfg.group = group;
                    cfg.iterations = 1;
                    cfg.centroids = 16;
                    if (m == CodecMethod::kQvg) cfg.stages = 2;
                    const bool has_channel_keys = m == CodecMethod::kQvg || m == CodecMethod::kRtn;
                    // plain, keys per channel, FP8 and INT4 codebooks
                    for (int variant : {0, 1, 2, 3}) {
                        if (variant == 1 && !has_channel_keys) continue;
                        if (variant >= 2 && m != CodecMethod::kQvg) continue;
                        cfg.channel_keys = variant == 1;
                        cfg.codebook_bits = variant == 2 ? 8 : variant == 3 ? 4 : 16;
                        auto codec = Codec::create(cfg);
                        for (KVRole role : {KVRole::kKey, KVRole::kValue}) {
                            EncodedSpan span = codec->encode(x, {role, 0, nullptr});
                            EXPECT_EQ(span.bytes(), codec->expected_bytes(2, 3, n, 128, role))
                                << cfg.describe() << " n=" << n;
                            EXPECT_LT(span.rel_error, m == CodecMethod::kBf16 ? 0.01 : 0.9)
                                << cfg.describe();
                        }
                    }
                }
            }
        }
    }
    // The formula of qvg.md: bits per element = b + 8/G + 8S/D + 16SC/N.
    auto qvg = Codec::create(default_codec_config(CodecMethod::kQvg));
    const double bits = 8.0 * qvg->expected_bytes(1, 12, 37440, 128) / (12.0 * 37440 * 128);
    EXPECT_NEAR(bits, 2.0 + 8.0 / 64 + 8.0 / 128 + 16.0 * 256 / 37440, 1e-12);
    EXPECT_NEAR(bits, 2.297, 5e-4);
}

TEST(Codec, BaselinesReconstructAsTheirDefinitionsSay) {
    at::Tensor x = tokens(KVRole::kKey);
    auto err = [&](CodecMethod m, KVRole role = KVRole::kKey) {
        auto codec = Codec::create(default_codec_config(m));
        return codec->encode(x, {role, 0, nullptr}).rel_error;
    };
    EXPECT_LT(err(CodecMethod::kBf16), 0.004);  // BF16 re-rounding of bf16 input is exact
    EXPECT_LT(err(CodecMethod::kFp8), 0.05);
    const double rtn = err(CodecMethod::kRtn);
    const double quarot = err(CodecMethod::kQuarot);
    const double qvg = err(CodecMethod::kQvg);
    EXPECT_LT(qvg, rtn);
    EXPECT_LT(quarot, 0.9);
    // With one scale per token, the outlier channels set every token's scale; the rotation
    // spreads them over all channels, which is what QuaRot is for.
    CodecConfig per_token = default_codec_config(CodecMethod::kRtn);
    per_token.bits = 4;
    per_token.group = 128;
    CodecConfig rotated = per_token;
    rotated.method = CodecMethod::kQuarot;
    EXPECT_LT(Codec::create(rotated)->encode(x).rel_error,
              Codec::create(per_token)->encode(x).rel_error);
    EXPECT_LT(err(CodecMethod::kKivi, KVRole::kKey), 0.9);
}

// Keys whose channels differ in scale by 50x, as attention keys do: one scale per token is set by
// the loud channels and rounds the quiet ones to nothing, one scale per channel is not.
at::Tensor channel_outlier_keys(int64_t n) {
    at::Tensor gain = at::exp(at::linspace(-2.0, 2.0, 64));
    at::Tensor mean = at::linspace(-1.0, 1.0, 64) * gain;
    return (at::randn({1, 2, n, 64}) * gain + mean).to(at::kBFloat16);
}

TEST(Codec, ChannelKeysQuantizeTheKeysResidualPerChannel) {
    at::manual_seed(11);
    at::Tensor x = channel_outlier_keys(1000);  // not a whole number of 64-token groups
    CodecConfig per_token = default_codec_config(CodecMethod::kQvg);
    per_token.asymmetric = true;
    per_token.centroids = 8;
    CodecConfig per_channel = per_token;
    per_channel.channel_keys = true;
    EXPECT_EQ(per_channel.describe(), "QVG INT2 G64 S1 asym K/ch");
    auto tok = Codec::create(per_token);
    auto ch = Codec::create(per_channel);
    const EncodedSpan tk = tok->encode(x, {KVRole::kKey, 1, nullptr});
    const EncodedSpan ck = ch->encode(x, {KVRole::kKey, 1, nullptr});
    // The same smoothing stage (same stream), a different scalar part.
    EXPECT_TRUE(at::equal(tk.stages[0].ids, ck.stages[0].ids));
    EXPECT_LT(ck.rel_error, 0.7 * tk.rel_error) << ck.rel_error << " vs " << tk.rel_error;
    EXPECT_NEAR(rel_error(x, ch->decode(ck)), ck.rel_error, 1e-3);
    EXPECT_EQ(ck.bytes(), ch->expected_bytes(1, 2, 1000, 64, KVRole::kKey));
    // Values stay per token: bit for bit what the per-token codec stores.
    const EncodedSpan tv = tok->encode(x, {KVRole::kValue, 1, nullptr});
    const EncodedSpan cv = ch->encode(x, {KVRole::kValue, 1, nullptr});
    EXPECT_TRUE(at::equal(tv.quant.codes, cv.quant.codes));
    EXPECT_TRUE(at::equal(ch->decode(cv), tok->decode(tv)));
    // RTN with keys per channel is KIVI's key path exactly (same groups, same rounding).
    CodecConfig rtn = default_codec_config(CodecMethod::kRtn);
    rtn.group = 32;
    rtn.asymmetric = true;
    rtn.channel_keys = true;
    auto kivi = Codec::create(default_codec_config(CodecMethod::kKivi));
    EXPECT_TRUE(at::equal(Codec::create(rtn)->decode(Codec::create(rtn)->encode(x)),
                          kivi->decode(kivi->encode(x))));
    // Dropping the stage folds the codebook into per-channel codes; the bound still holds.
    CodecConfig two = per_channel;
    two.stages = 2;
    auto codec2 = Codec::create(two);
    EncodedSpan span = codec2->encode(x, {KVRole::kKey, 2, nullptr});
    codec2->drop_stages(span, 0);
    CodecConfig none = two;
    none.stages = 0;
    EXPECT_EQ(span.bytes(), Codec::create(none)->expected_bytes(1, 2, 1000, 64));
    EXPECT_LE(rel_error(x, codec2->decode(span)), span.rel_error + 1e-9);
    CodecConfig bad = default_codec_config(CodecMethod::kKivi);
    bad.channel_keys = true;
    expect_error_mentions([&] { Codec::create(bad); }, "keys per channel are a QVG/RTN option");
}

TEST(Codec, SmallerCodebooksHoldMoreCentroidsInTheSameBytes) {
    CodecConfig c8 = default_codec_config(CodecMethod::kQvg);
    c8.asymmetric = true;
    c8.centroids = 8;
    struct Case {
        int bits;
        int centroids;  // at most the bytes of 8 BF16 centroids of D = 128 (2048 per head)
        const char* label;
        double slack;  // error against the same centroids held in BF16
    };
    for (const Case& k : {Case{8, 16, "QVG INT2 G64 S1 asym FP8-codebooks", 1.02},
                          Case{4, 31, "QVG INT2 G64 S1 asym INT4-codebooks", 1.05}}) {
        CodecConfig wide = c8;
        wide.centroids = k.centroids;
        CodecConfig small = wide;
        small.codebook_bits = k.bits;
        EXPECT_EQ(small.describe(), k.label);
        auto codec = Codec::create(small);
        for (KVRole role : {KVRole::kKey, KVRole::kValue}) {
            const at::Tensor x = tokens(role);
            const EncodedSpan a = Codec::create(c8)->encode(x, {role, 3, nullptr});
            const EncodedSpan b = Codec::create(wide)->encode(x, {role, 3, nullptr});
            const EncodedSpan f = codec->encode(x, {role, 3, nullptr});
            EXPECT_LE(f.bytes(), a.bytes()) << k.label;
            EXPECT_EQ(f.bytes(), codec->expected_bytes(1, 2, x.size(2), 128, role)) << k.label;
            EXPECT_EQ(f.stages[0].centroids.scalar_type(), at::kByte);
            EXPECT_LT(f.rel_error, a.rel_error) << k.label;
            // The rounding costs little next to the scalar codes' error.
            EXPECT_LT(f.rel_error, k.slack * b.rel_error)
                << k.label << ": " << f.rel_error << " vs " << b.rel_error;
            // The residual was taken against the centroids as stored: requantizing it
            // reproduces the span's codes exactly.
            const at::Tensor picked =
                centroid_values(f.stages[0])
                    .gather(2, f.stages[0].ids.to(at::kLong).unsqueeze(-1).expand(x.sizes()));
            const at::Tensor residual =
                (x.to(at::kFloat) - picked).to(at::kBFloat16).to(at::kFloat);
            const GroupQuantized q = quantize_groups(residual, {2, 64, true, false});
            EXPECT_TRUE(at::equal(q.codes, f.quant.codes)) << k.label;
            EXPECT_NEAR(rel_error(x, codec->decode(f)), f.rel_error, 1e-6);
            // A warm start reads the small codebook of the previous span.
            const at::Tensor next = tokens(role, 2);
            const EncodedSpan w = codec->encode(next, {role, 4, &f});
            EXPECT_LT(w.rel_error, Codec::create(c8)->encode(next, {role, 4, &a}).rel_error);
            // Dropping the stage folds the codebook into the codes.
            EncodedSpan dropped = f;
            codec->drop_stages(dropped, 0);
            CodecConfig none = small;
            none.stages = 0;
            EXPECT_EQ(dropped.bytes(), Codec::create(none)->expected_bytes(1, 2, x.size(2), 128));
            EXPECT_LE(rel_error(x, codec->decode(dropped)), dropped.rel_error + 1e-9);
        }
    }
    CodecConfig bad = default_codec_config(CodecMethod::kKivi);
    bad.codebook_bits = 8;
    expect_error_mentions([&] { Codec::create(bad); }, "FP8 and INT4 codebooks are a QVG option");
    CodecConfig odd = c8;
    odd.codebook_bits = 6;
    expect_error_mentions([&] { Codec::create(odd); }, "codebook bits must be 16");
}

TEST(Codec, DecodeIntoOnTheHostEqualsTheDecode) {
    // decode_into on the CPU decodes QVG and RTN spans in one pass (kernels::qvg_decode_host);
    // it must give exactly decode()'s values, in BF16 and widened to float32, with RoPE and
    // into a strided history buffer, for every codebook format; other codecs keep the generic
    // path, compared the same way.
    const at::Tensor x = tokens(KVRole::kKey, 0, 1).narrow(2, 0, 200).to(at::kBFloat16);
    const auto [b, h, n, d] = std::array{x.size(0), x.size(1), x.size(2), x.size(3)};
    const WanRope rope(d, at::kCPU);
    const auto angles = rope.angles(0, 1, 10, 20);  // 200 tokens
    std::vector<CodecConfig> configs;
    for (int codebook : {16, 8, 4}) {
        for (int stages : {0, 1, 2}) {
            if (stages == 0 && codebook != 16) continue;
            CodecConfig c = default_codec_config(CodecMethod::kQvg);
            c.stages = stages;
            c.centroids = 12;
            c.iterations = 1;
            c.codebook_bits = codebook;
            c.asymmetric = stages == 1;
            configs.push_back(c);
        }
    }
    CodecConfig int4 = default_codec_config(CodecMethod::kQvg);
    int4.bits = 4;
    int4.group = 32;
    int4.centroids = 8;
    configs.push_back(int4);
    configs.push_back(default_codec_config(CodecMethod::kRtn));
    configs.push_back(default_codec_config(CodecMethod::kKivi));
    CodecConfig kch = default_codec_config(CodecMethod::kQvg);
    kch.centroids = 8;
    kch.channel_keys = true;
    kch.group = 32;
    configs.push_back(kch);
    for (const CodecConfig& c : configs) {
        auto codec = Codec::create(c);
        const EncodedSpan span = codec->encode(x, {.role = KVRole::kKey});
        const at::Tensor decoded = codec->decode(span).transpose(1, 2);  // [B, N, H, D] BF16
        for (at::ScalarType dtype : {at::kBFloat16, at::kFloat}) {
            for (bool with_rope : {false, true}) {
                at::Tensor expect = at::empty({b, n, h, d}, at::TensorOptions().dtype(dtype));
                if (with_rope) {
                    WanRope::apply_into(decoded, angles, expect);
                } else {
                    expect.copy_(decoded);
                }
                // A history buffer holding 5 more tokens before the span.
                at::Tensor buffer = at::zeros({b, n + 5, h, d}, at::TensorOptions().dtype(dtype));
                codec->decode_into(span, buffer.narrow(1, 5, n), with_rope ? &angles : nullptr);
                EXPECT_TRUE(at::equal(buffer.narrow(1, 5, n), expect))
                    << c.describe() << " " << c10::toString(dtype) << (with_rope ? " rope" : "");
                EXPECT_EQ(buffer.narrow(1, 0, 5).abs().sum().item<double>(), 0.0);
            }
        }
    }
}

TEST(Codec, DroppingStagesGivesBytesBackAndBoundsTheError) {
    at::Tensor x = tokens(KVRole::kKey);
    CodecConfig cfg = default_codec_config(CodecMethod::kQvg);
    cfg.stages = 3;
    auto codec = Codec::create(cfg);
    EncodedSpan span = codec->encode(x, {KVRole::kKey, 3, nullptr});
    const int64_t before = span.bytes();
    codec->drop_stages(span, 1);
    EXPECT_EQ(span.stages.size(), 1u);
    EXPECT_EQ(span.config.stages, 1);
    CodecConfig one = cfg;
    one.stages = 1;
    EXPECT_EQ(span.bytes(), Codec::create(one)->expected_bytes(1, 2, x.size(2), 128));
    EXPECT_LT(span.bytes(), before);
    EXPECT_TRUE(span.rel_error_is_bound);
    EXPECT_LE(rel_error(x, codec->decode(span)), span.rel_error + 1e-9);
    codec->drop_stages(span, 0);
    EXPECT_TRUE(span.stages.empty());
    EXPECT_LE(rel_error(x, codec->decode(span)), span.rel_error + 1e-9);
}

TEST(Codec, BadInputIsAClearError) {
    auto codec = Codec::create(default_codec_config(CodecMethod::kQvg));
    at::Tensor good = tokens(KVRole::kKey);
    expect_error_mentions([&] { codec->encode(good[0]); }, "[B, H, N, D]");
    expect_error_mentions(
        [&] {
            codec->encode(at::ones({1, 1, 300, 128}, at::kInt));
        },
        "floating point");
    expect_error_mentions(
        [&] {
            codec->encode(at::randn({1, 1, 300, 96}));
        },
        "multiple of the group size 64");
    at::Tensor nan = good.clone();
    nan[0][0][5][3] = NAN;
    expect_error_mentions([&] { codec->encode(nan); }, "NaN or Inf");
    at::Tensor inf = good.clone();
    inf[0][1][7][0] = INFINITY;
    expect_error_mentions([&] { codec->encode(inf); }, "NaN or Inf");
    expect_error_mentions([&] { codec->encode(at::randn({1, 1, 0, 128})); }, "empty");
    expect_error_mentions([&] { codec->encode(at::randn({1, 1, 100, 128})); }, "only 100 tokens");
    CodecConfig bad = default_codec_config(CodecMethod::kQvg);
    bad.stages = 5;
    expect_error_mentions([&] { Codec::create(bad); }, "stages must be in 0..4");
    bad = default_codec_config(CodecMethod::kQvg);
    bad.bits = 3;
    expect_error_mentions([&] { Codec::create(bad); }, "bits must be 2 or 4");
    expect_error_mentions([&] { parse_codec_method("int3"); }, "unknown codec 'int3'");
    expect_error_mentions(
        [&] {
            kmeans(at::randn({1, 10, 4}), {20, 2, 1e-4, 0, true});
        },
        "only 10 tokens");
}

// Items of groups (the walks of a batch) stop early each on its own: an item that converged
// keeps its centroids while the others go on, so every item ends as it would alone, also when
// the stop allows some assignments to change (a loose converged_fraction).
TEST(KMeans, EachItemStopsAsItWouldAlone) {
    at::manual_seed(5);
    const int64_t heads = 2, n = 600, d = 16;
    // Item 0: well separated clusters (settles at once); item 1: noise (takes long).
    const at::Tensor centres = at::randn({heads, 4, d}) * 8;
    const at::Tensor member = at::randint(0, 4, {heads, n});
    const at::Tensor tight = centres.gather(1, member.unsqueeze(-1).expand({heads, n, d})) +
                             0.05 * at::randn({heads, n, d});
    const at::Tensor x = at::cat({tight, at::randn({heads, n, d})}).to(at::kBFloat16);
    KMeansOptions opt;
    opt.centroids = 8;
    opt.iterations = 30;
    opt.converged_fraction = 0.01;
    opt.seed = 3;
    opt.groups_per_item = heads;
    const KMeansResult both = kmeans(x, opt);
    std::vector<int> runs;
    for (int64_t item = 0; item < 2; ++item) {
        const KMeansResult alone = kmeans(x.narrow(0, item * heads, heads), opt);
        runs.push_back(alone.iterations_run);
        EXPECT_TRUE(at::equal(both.ids.narrow(0, item * heads, heads), alone.ids)) << item;
        EXPECT_TRUE(at::equal(both.centroids.narrow(0, item * heads, heads), alone.centroids))
            << item;
    }
    EXPECT_LT(runs[0], runs[1]);  // the items did stop at different iterations
    EXPECT_EQ(both.iterations_run, runs[1]);
}

TEST(KMeans, ConvergesAndNeverIncreasesTheObjective) {
    at::Tensor x = tokens(KVRole::kValue).view({2, -1, 128}).to(at::kFloat);
    double previous = 1e300;
    for (int iters : {0, 1, 2, 4, 8}) {
        KMeansResult r = kmeans(x, {256, iters, 0.0, 3, true});
        const double inertia = kmeans_inertia(x, r.ids, r.centroids);
        EXPECT_LE(inertia, previous * (1 + 1e-6)) << iters;  // bf16 centroid rounding only
        previous = inertia;
    }
}

}  // namespace
}  // namespace qvg::core
