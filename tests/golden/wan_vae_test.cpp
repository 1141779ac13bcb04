// Wan2.1 VAE decoder against tensors from the upstream reference (tests/data/wan_vae_tiny, a copy
// of the shared fixture; config.json there describes the protocol). The fixture holds no
// intermediate activations, so divergence is located by output frame (every failure prints the
// per-frame error) and by the feature-cache slot shapes, which follow the decoder's call order.

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/wan_vae.h"
#include "test_util.h"

namespace qvg::core {
namespace {

constexpr double kFp32MaxAbs = 1e-4;  // fixture README: safe for fp32; CPU vs CUDA is 4.5e-6

TensorMap load_tensors(const std::string& relative) {
    auto file = SafetensorsFile::open(test_data(relative));
    TensorMap map;
    for (const TensorInfo& info : file->tensors()) map[info.name] = file->tensor(info.name);
    return map;
}

const TensorMap& fixture_weights() {
    static const TensorMap map = load_tensors("wan_vae_tiny/weights.safetensors");
    return map;
}

const TensorMap& fixture_io() {
    static const TensorMap map = load_tensors("wan_vae_tiny/io.safetensors");
    return map;
}

at::Tensor latents() { return fixture_io().at("latents"); }  // [1, 9, 16, 4, 4]

WanVaeDecoder tiny_decoder(at::ScalarType dtype = at::kFloat) {
    return WanVaeDecoder::load(fixture_weights(), WanVaeConfig::tiny(), at::kCPU, dtype);
}

// Max abs difference, relative L2 error and the per-frame max abs of two [B, T, C, H, W] videos.
// The measured errors are printed on success too, so the margin to the bound is visible.
::testing::AssertionResult videos_close(const char* what, const at::Tensor& got,
                                        const at::Tensor& want, double max_abs_bound) {
    if (got.sizes() != want.sizes()) {
        return ::testing::AssertionFailure()
               << "shape " << got.sizes() << " expected " << want.sizes();
    }
    const at::Tensor g = got.to(at::kDouble);
    const at::Tensor w = want.to(at::kDouble);
    const at::Tensor diff = (g - w).abs();
    const double max_abs = diff.max().item<double>();
    const double rel_l2 = ((g - w).norm() / w.norm().clamp_min(1e-30)).item<double>();
    fmt::print("[ measure  ] {}: max abs {:.3g} (bound {:.3g}), relative L2 {:.3g}\n", what,
               max_abs, max_abs_bound, rel_l2);
    if (max_abs <= max_abs_bound) return ::testing::AssertionSuccess();
    const at::Tensor per_frame = std::get<0>(diff.transpose(0, 1).reshape({g.size(1), -1}).max(1));
    std::vector<double> frames(per_frame.data_ptr<double>(),
                               per_frame.data_ptr<double>() + per_frame.numel());
    return ::testing::AssertionFailure()
           << fmt::format(
                  "max abs {:.3g} > {:.3g}, relative L2 {:.3g}; per output frame max abs "
                  "{::.2g}",
                  max_abs, max_abs_bound, rel_l2, frames)
           << " (" << what << ")";
}

at::Tensor decode_in_chunks(const WanVaeDecoder& decoder, const at::Tensor& z,
                            const std::vector<int64_t>& chunks, VaeOutput output) {
    WanVaeStream stream = decoder.start_stream();
    std::vector<at::Tensor> parts;
    int64_t begin = 0;
    for (int64_t n : chunks) {
        parts.push_back(stream.decode_chunk(z.narrow(1, begin, n), output));
        begin += n;
    }
    EXPECT_EQ(begin, z.size(1));
    EXPECT_EQ(stream.latent_frames_decoded(), z.size(1));
    return at::cat(parts, 1);
}

template <typename Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "<no exception>";
}

TEST(WanVae, ConfigPresetsDescribeTheDecoder) {
    const WanVaeConfig wan = WanVaeConfig::wan21();
    EXPECT_NO_THROW(wan.validate());
    EXPECT_EQ(wan.stage_in_dims(), (std::vector<int64_t>{384, 192, 192, 96}));
    EXPECT_EQ(wan.stage_out_dims(), (std::vector<int64_t>{384, 384, 192, 96}));
    EXPECT_EQ(wan.spatial_factor(), 8);
    EXPECT_EQ(wan.temporal_factor(), 4);
    EXPECT_EQ(wan.output_frames(21), 81);
    const WanVaeConfig tiny = WanVaeConfig::tiny();
    EXPECT_EQ(tiny.stage_in_dims(), (std::vector<int64_t>{32, 16, 16, 8}));
    EXPECT_EQ(tiny.output_frames(9), 33);

    // The fixture's latents are normalised; its mean/std are the Wan2.1 constants.
    const auto mean = fixture_io().at("mean");
    const auto std = fixture_io().at("std");
    EXPECT_TRUE(at::equal(mean, at::tensor(tiny.latent_mean)));
    EXPECT_TRUE(at::equal(std, at::tensor(tiny.latent_std)));

    WanVaeConfig bad = wan;
    bad.temporal_upsample = {true, true};
    EXPECT_THROW(bad.validate(), Error);
    bad = wan;
    bad.latent_std[3] = 0.0f;
    EXPECT_THROW(bad.validate(), Error);
}

TEST(WanVae, DecodeMatchesFixtureFp32) {
    c10::InferenceMode guard;
    const WanVaeDecoder decoder = tiny_decoder();
    const at::Tensor raw = decoder.decode(latents(), VaeOutput::kRaw);
    EXPECT_EQ(raw.scalar_type(), at::kFloat);
    EXPECT_TRUE(videos_close("fp32 decode", raw, fixture_io().at("fp32/decode_all"), kFp32MaxAbs));

    const at::Tensor clamped = decoder.decode(latents());
    EXPECT_LE(clamped.max().item<float>(), 1.0f);
    EXPECT_GE(clamped.min().item<float>(), -1.0f);
    EXPECT_TRUE(videos_close("fp32 decode, clamped", clamped,
                             fixture_io().at("fp32/decode_all").clamp(-1.0, 1.0), kFp32MaxAbs));
}

TEST(WanVae, StreamInChunksOfThreeMatchesFixture) {
    c10::InferenceMode guard;
    const WanVaeDecoder decoder = tiny_decoder();
    WanVaeStream stream = decoder.start_stream();
    std::vector<at::Tensor> parts;
    for (int64_t begin = 0; begin < 9; begin += 3) {
        parts.push_back(stream.decode_chunk(latents().narrow(1, begin, 3), VaeOutput::kRaw));
    }
    ASSERT_EQ(parts[0].size(1), 9);
    ASSERT_EQ(parts[1].size(1), 12);
    ASSERT_EQ(parts[2].size(1), 12);
    const at::Tensor streamed = at::cat(parts, 1);
    EXPECT_TRUE(videos_close("fp32 stream 3+3+3", streamed, fixture_io().at("fp32/decode_stream"),
                             kFp32MaxAbs));
    // Both paths run the same per-latent-frame computation, so they agree bit for bit.
    EXPECT_TRUE(at::equal(streamed, decoder.decode(latents(), VaeOutput::kRaw)));
}

TEST(WanVae, StreamInUnevenChunksEqualsWholeDecode) {
    c10::InferenceMode guard;
    const WanVaeDecoder decoder = tiny_decoder();
    const at::Tensor whole = decoder.decode(latents(), VaeOutput::kRaw);
    const std::vector<std::vector<int64_t>> splits = {
        {1, 2, 4, 2}, {1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 7}, {5, 1, 3}, {9}};
    for (const auto& split : splits) {
        SCOPED_TRACE(fmt::format("chunks {}", split));
        const at::Tensor streamed = decode_in_chunks(decoder, latents(), split, VaeOutput::kRaw);
        EXPECT_TRUE(at::equal(streamed, whole));
        EXPECT_TRUE(videos_close("fp32 stream, uneven chunks", streamed,
                                 fixture_io().at("fp32/decode_all"), kFp32MaxAbs));
    }
}

TEST(WanVae, FeatureCacheSlotsMatchReferenceOrderAndShapes) {
    c10::InferenceMode guard;
    std::ifstream in(test_data("wan_vae_tiny/config.json"));
    const auto config = nlohmann::json::parse(in);
    const auto& expected =
        config.at("decoder_derived").at("feature_cache_slot_shapes_after_9_frames");

    const WanVaeDecoder decoder = tiny_decoder();
    WanVaeStream stream = decoder.start_stream();
    for (const auto& shape : stream.cache_shapes()) EXPECT_TRUE(shape.empty());
    EXPECT_EQ(stream.cache_bytes(), 0);
    stream.decode_chunk(latents().narrow(1, 0, 4));
    stream.decode_chunk(latents().narrow(1, 4, 5));

    // The reference allocates one slot per Conv3d (33, one a shortcut that is never cached).
    const auto shapes = stream.cache_shapes();
    ASSERT_EQ(shapes.size(), 32u);
    ASSERT_GE(expected.size(), shapes.size());
    int64_t bytes = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
        EXPECT_EQ(shapes[i], expected[i].get<std::vector<int64_t>>()) << "slot " << i;
        bytes += std::accumulate(shapes[i].begin(), shapes[i].end(), int64_t{4},
                                 std::multiplies<int64_t>());
    }
    for (size_t i = shapes.size(); i < expected.size(); ++i) EXPECT_TRUE(expected[i].is_null());
    EXPECT_EQ(stream.cache_bytes(), bytes);
}

TEST(WanVae, Bf16DecodeMatchesFixtureBf16) {
    c10::InferenceMode guard;
    const WanVaeDecoder decoder = tiny_decoder(at::kBFloat16);
    const at::Tensor got = decoder.decode(latents(), VaeOutput::kRaw);
    EXPECT_EQ(got.scalar_type(), at::kBFloat16);
    // Two bf16 runs round differently along the way: the bound is the reference's own bf16 vs
    // fp32 difference (0.11 for values up to 2.49) plus a margin; the mean error stays far lower.
    const at::Tensor want = fixture_io().at("bf16/decode_all");
    EXPECT_TRUE(videos_close("bf16 decode vs reference bf16", got, want, 0.15));
    const double mean_abs = (got.to(at::kFloat) - want.to(at::kFloat)).abs().mean().item<double>();
    EXPECT_LT(mean_abs, 0.02);
    EXPECT_TRUE(videos_close("bf16 decode vs reference fp32", got,
                             fixture_io().at("fp32/decode_all"), 0.15));
}

TEST(WanVae, ResetStartsANewVideo) {
    c10::InferenceMode guard;
    const WanVaeDecoder decoder = tiny_decoder();
    const at::Tensor whole = decoder.decode(latents(), VaeOutput::kRaw);
    WanVaeStream stream = decoder.start_stream();
    stream.decode_chunk(latents().narrow(1, 0, 5), VaeOutput::kRaw);
    stream.reset();
    EXPECT_EQ(stream.latent_frames_decoded(), 0);
    EXPECT_EQ(stream.cache_bytes(), 0);
    const at::Tensor first = stream.decode_chunk(latents().narrow(1, 0, 2), VaeOutput::kRaw);
    const at::Tensor rest = stream.decode_chunk(latents().narrow(1, 2, 7), VaeOutput::kRaw);
    EXPECT_EQ(first.size(1), 5);
    EXPECT_TRUE(at::equal(at::cat({first, rest}, 1), whole));
}

TEST(WanVae, RejectsBadLatentsAndKeepsStreamState) {
    c10::InferenceMode guard;
    const WanVaeDecoder decoder = tiny_decoder();
    const at::Tensor z = latents();
    EXPECT_NE(error_of([&] { decoder.decode(z[0]); }).find("rank 4"), std::string::npos);
    EXPECT_NE(error_of([&] { decoder.decode(z.narrow(2, 0, 8)); }).find("8 channels"),
              std::string::npos);
    EXPECT_NE(error_of([&] { decoder.decode(z.narrow(1, 0, 0)); }).find("non-empty"),
              std::string::npos);
    EXPECT_NE(error_of([&] { decoder.decode(z.to(at::kInt)); }).find("floating-point"),
              std::string::npos);

    // A chunk of another size mid-stream is refused and the stream carries on unharmed.
    WanVaeStream stream = decoder.start_stream();
    const at::Tensor first = stream.decode_chunk(z.narrow(1, 0, 4), VaeOutput::kRaw);
    const at::Tensor other = at::zeros({1, 2, 16, 8, 8});
    EXPECT_NE(error_of([&] { stream.decode_chunk(other); }).find("reset()"), std::string::npos);
    EXPECT_NE(error_of([&] { stream.decode_chunk(z.narrow(2, 0, 4)); }).find("4 channels"),
              std::string::npos);
    EXPECT_EQ(stream.latent_frames_decoded(), 4);
    const at::Tensor rest = stream.decode_chunk(z.narrow(1, 4, 5), VaeOutput::kRaw);
    EXPECT_TRUE(at::equal(at::cat({first, rest}, 1), decoder.decode(z, VaeOutput::kRaw)));
}

TEST(WanVae, RejectsMissingMisshapedAndUnexpectedWeightsInOneError) {
    TensorMap weights = fixture_weights();
    weights.erase("decoder.middle.1.proj.weight");
    weights.erase("decoder.upsamples.7.time_conv.bias");
    weights["decoder.head.2.weight"] = at::zeros({3, 8, 3, 3});
    weights["decoder.upsamples.15.residual.0.gamma"] = at::ones({8, 1, 1, 1});
    weights["encoder.conv1.weight"] = at::zeros({1});  // not the decoder's: ignored
    const std::string message =
        error_of([&] { WanVaeDecoder::load(weights, WanVaeConfig::tiny(), at::kCPU, at::kFloat); });
    for (const char* part :
         {"Wan VAE decoder (base_dim 8", "2 missing, 1 unexpected, 1 with the wrong shape",
          "missing decoder.middle.1.proj.weight [32, 32, 1, 1]",
          "missing decoder.upsamples.7.time_conv.bias [64]",
          "wrong shape decoder.head.2.weight: expected [3, 8, 3, 3, 3], found [3, 8, 3, 3]",
          "unexpected decoder.upsamples.15.residual.0.gamma [8, 1, 1, 1]"}) {
        EXPECT_NE(message.find(part), std::string::npos) << part << " not in:\n" << message;
    }
    EXPECT_EQ(message.find("encoder."), std::string::npos) << message;
    EXPECT_THROW(WanVaeDecoder::load(weights, WanVaeConfig::tiny(), at::kCPU, at::kFloat),
                 FormatError);

    // The real model's config against the tiny weights: every tensor is mis-shaped.
    const std::string wrong_config = error_of([&] {
        WanVaeDecoder::load(fixture_weights(), WanVaeConfig::wan21(), at::kCPU, at::kFloat);
    });
    EXPECT_NE(wrong_config.find("decoder.conv1.weight: expected [384, 16, 3, 3, 3], found "
                                "[32, 16, 3, 3, 3]"),
              std::string::npos)
        << wrong_config;

    TensorMap int_weights = fixture_weights();
    int_weights["conv2.weight"] = at::zeros({16, 16, 1, 1, 1}, at::kInt);
    const std::string int_message = error_of(
        [&] { WanVaeDecoder::load(int_weights, WanVaeConfig::tiny(), at::kCPU, at::kFloat); });
    EXPECT_NE(int_message.find("expected floating-point weights, found conv2.weight Int"),
              std::string::npos)
        << int_message;

    // An extra RMS_norm bias is accepted.
    TensorMap with_bias = fixture_weights();
    with_bias["decoder.head.0.bias"] = at::zeros({8, 1, 1, 1});
    EXPECT_NO_THROW(WanVaeDecoder::load(with_bias, WanVaeConfig::tiny(), at::kCPU, at::kFloat));
    EXPECT_THROW(WanVaeDecoder::load(fixture_weights(), WanVaeConfig::tiny(), at::kCPU, at::kInt),
                 Error);
}

TEST(WanVae, NormBiasIsApplied) {
    c10::InferenceMode guard;
    TensorMap with_bias = fixture_weights();
    with_bias["decoder.head.0.bias"] = at::full({8, 1, 1, 1}, 0.25);
    const auto plain = tiny_decoder().decode(latents().narrow(1, 0, 2), VaeOutput::kRaw);
    const auto biased = WanVaeDecoder::load(with_bias, WanVaeConfig::tiny(), at::kCPU, at::kFloat)
                            .decode(latents().narrow(1, 0, 2), VaeOutput::kRaw);
    EXPECT_GT((plain - biased).abs().max().item<float>(), 1e-3f);
}

TEST(WanVae, Wan21PresetLoadsFullSizeWeights) {
    c10::InferenceMode guard;
    // Shapes only: constant weights of the real layout (73.3M decoder parameters plus conv2).
    const WanVaeConfig config = WanVaeConfig::wan21();
    TensorMap weights;
    // Derive the real key set by scaling the tiny fixture's shapes: every channel count is 12x.
    for (const auto& [key, t] : fixture_weights()) {
        std::vector<int64_t> shape = t.sizes().vec();
        const bool is_conv2 = key.starts_with("conv2.");
        const bool is_rgb_out = key.starts_with("decoder.head.2.");
        for (size_t d = 0; d < shape.size() && d < 2; ++d) {
            const bool latent_in = key.starts_with("decoder.conv1.weight") && d == 1;
            const bool rgb = is_rgb_out && d == 0;
            if (!is_conv2 && !latent_in && !rgb && shape[d] > 1) shape[d] *= 12;
        }
        weights[key] = at::full(shape, key.ends_with(".gamma") ? 1.0 : 0.01);
    }
    int64_t decoder_params = 0;
    for (const auto& [key, t] : weights) {
        if (key.starts_with("decoder.")) decoder_params += t.numel();
    }
    EXPECT_NEAR(static_cast<double>(decoder_params) / 1e6, 73.3, 0.05);
    const WanVaeDecoder decoder = WanVaeDecoder::load(weights, config, at::kCPU, at::kFloat);
    const at::Tensor video = decoder.decode(at::randn({1, 2, 16, 2, 3}));
    EXPECT_EQ(video.sizes().vec(), (std::vector<int64_t>{1, 5, 3, 16, 24}));
    EXPECT_TRUE(video.isfinite().all().item<bool>());
}

TEST(WanVae, ToRgb8RoundsAndClamps) {
    const at::Tensor frames =
        at::tensor({-1.0f, 1.0f, 0.0f, -3.0f, 2.0f, 0.5f}).reshape({1, 3, 1, 2});
    const at::Tensor rgb = to_rgb8(frames);
    EXPECT_EQ(rgb.scalar_type(), at::kByte);
    EXPECT_EQ(rgb.sizes().vec(), (std::vector<int64_t>{1, 1, 2, 3}));
    // Pixel 0 takes channel values -1, 0, 2; pixel 1 takes 1, -3, 0.5.
    const std::vector<uint8_t> want = {0, 128, 255, 255, 0, 191};
    const std::vector<uint8_t> got(rgb.data_ptr<uint8_t>(), rgb.data_ptr<uint8_t>() + 6);
    EXPECT_EQ(got, want);
    EXPECT_EQ(to_rgb8(frames.unsqueeze(0)).sizes().vec(), rgb.sizes().vec());
    EXPECT_THROW(to_rgb8(at::zeros({1, 4, 2, 2})), Error);
    EXPECT_THROW(to_rgb8(at::zeros({2, 1, 3, 2, 2})), Error);
    EXPECT_THROW(to_rgb8(at::zeros({1, 3, 2, 2}, at::kByte)), Error);
}

}  // namespace
}  // namespace qvg::core
