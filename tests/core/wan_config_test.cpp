// Wan DiT configs: presets, config.json parsing, and detection from checkpoint tensor shapes.

#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/wan_config.h"
#include "qvg/core/wan_dit.h"
#include "test_util.h"

namespace qvg::core {
namespace {

// The self_forcing_tiny fixture's model_config, as its config.json gives it.
constexpr const char* kTinyJson = R"({
  "model_type": "t2v", "patch_size": [1, 2, 2], "text_len": 16, "in_dim": 16, "dim": 64,
  "ffn_dim": 128, "freq_dim": 256, "text_dim": 32, "out_dim": 16, "num_heads": 2,
  "num_layers": 2, "local_attn_size": -1, "sink_size": 0, "qk_norm": true,
  "cross_attn_norm": true, "eps": 1e-06})";

TensorMap fixture_weights() {
    auto file = SafetensorsFile::open(test_data("self_forcing_tiny/weights.safetensors"));
    TensorMap w;
    for (const auto& info : file->tensors()) w[info.name] = file->tensor(info.name);
    return w;
}

// Shapes only: a checkpoint of `config` without the cost of real data.
TensorMap shaped_like(const WanConfig& config) {
    TensorMap w;
    for (const auto& e : WanDiT::expected_tensors(config)) {
        w[e.name] = at::empty(e.shape, at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
    }
    return w;
}

int64_t parameter_count(const WanConfig& config) {
    int64_t n = 0;
    for (const auto& e : WanDiT::expected_tensors(config)) {
        int64_t size = 1;
        for (int64_t d : e.shape) size *= d;
        n += size;
    }
    return n;
}

TEST(WanConfig, PresetsMatchThePublishedModels) {
    const WanConfig small = WanConfig::wan_1_3b();
    EXPECT_EQ(small.head_dim(), 128);
    // docs/self-forcing.md: 1,418,996,800 parameters in 825 tensors.
    EXPECT_EQ(parameter_count(small), 1418996800);
    EXPECT_EQ(WanDiT::expected_tensors(small).size(), 825u);
    const WanConfig big = WanConfig::wan_5b();
    EXPECT_EQ(big.dim, 3072);
    EXPECT_EQ(big.num_heads, 24);
    EXPECT_EQ(big.head_dim(), 128);
    EXPECT_EQ(big.num_layers, 30);
    EXPECT_EQ(big.ffn_dim, 14336);
    EXPECT_EQ(big.in_dim, 48);
    EXPECT_EQ(big.out_dim, 48);
    EXPECT_EQ(parameter_count(WanConfig::tiny()), 161536);  // fixture config.json param_count
}

TEST(WanConfig, ParsesTheFixtureConfigAndDetectsItFromShapes) {
    EXPECT_EQ(WanConfig::from_json(kTinyJson), WanConfig::tiny());
    const TensorMap weights = fixture_weights();
    EXPECT_EQ(WanConfig::from_weights(weights), WanConfig::tiny());
    // An empty config is filled from the shapes (and the tiny preset for heads and text_len).
    EXPECT_EQ(WanConfig::from_json("{}", &weights), WanConfig::tiny());
    EXPECT_EQ(WanConfig::from_weights(shaped_like(WanConfig::wan_1_3b())), WanConfig::wan_1_3b());
    EXPECT_EQ(WanConfig::from_weights(shaped_like(WanConfig::wan_5b())), WanConfig::wan_5b());
    // Only dim given: the preset of that width supplies the rest.
    EXPECT_EQ(WanConfig::from_json(R"({"dim": 1536})"), WanConfig::wan_1_3b());
    WanConfig windowed = WanConfig::wan_1_3b();
    windowed.text_len = 256;
    EXPECT_EQ(WanConfig::from_json(R"({"dim": 1536, "text_len": 256, "_class_name": "x"})"),
              windowed);
    TempDir dir;
    write_file(dir.path() / "config.json", kTinyJson);
    EXPECT_EQ(WanConfig::from_json_file(dir.path() / "config.json"), WanConfig::tiny());
}

TEST(WanConfig, RejectsWhatCannotBeAWanModel) {
    EXPECT_THROW(WanConfig::from_json("{\"dim\": 64,"), FormatError);
    EXPECT_THROW(WanConfig::from_json("[1, 2]"), Error);
    EXPECT_THROW(WanConfig::from_json(R"({"dim": "wide"})"), Error);
    EXPECT_THROW(WanConfig::from_json(R"({"dim": 64, "model_type": "i2v"})"), Error);
    EXPECT_THROW(WanConfig::from_json(R"({"dim": 64, "num_heads": 3})"), Error);
    EXPECT_THROW(WanConfig::from_json(R"({"dim": 64, "patch_size": [2, 2]})"), Error);
    try {
        WanConfig::from_json(R"({"dim": 100})");
        FAIL() << "a dim without preset and without the other keys was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("ffn_dim"), std::string::npos) << e.what();
    }
    EXPECT_THROW(WanConfig::from_json_file("/nonexistent/config.json"), Error);
    TensorMap no_blocks = fixture_weights();
    no_blocks.erase("patch_embedding.weight");
    EXPECT_THROW(WanConfig::from_weights(no_blocks), Error);
}

}  // namespace
}  // namespace qvg::core
