// qvg generate on the tiny Self-Forcing fixture: parity of the dumped latents with the reference
// run, the report, the MP4 written through the tiny VAE, and caller mistakes.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "qvg/core/safetensors.h"
#include "test_util.h"

#ifdef QVG_HAVE_FFMPEG
#include <qvg/render/mp4_probe.h>
#endif

namespace qvg {
namespace {

namespace fs = std::filesystem;

const std::string kModel = test_data("self_forcing_tiny").string();
const std::string kIo = test_data("self_forcing_tiny/io.safetensors").string();
const std::string kVae = test_data("wan_vae_tiny/weights.safetensors").string();
// The fixture's geometry: latents [1, 9, 16, 4, 8] -> 32x64 pixels.
const std::string kText = " --text-embedding " + kIo;
const std::string kSize = " --height 32 --width 64";
const std::string kTiny = kText + " --latent-frames 9" + kSize;
// fp32 against the fp32 reference (the golden test's bound: reordering noise is ~1e-6).
constexpr double kFp32RelL2 = 1e-4;

double rel_l2(const at::Tensor& got, const at::Tensor& ref) {
    const at::Tensor g = got.to(at::kDouble), r = ref.to(at::kDouble);
    return (g - r).norm().item<double>() / r.norm().item<double>();
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

TEST(GenerateCli, DumpReproducesTheFp32Reference) {
    TempDir dir;
    const fs::path dump = dir.path() / "out.safetensors";
    const CommandResult r = run_qvg("generate --model " + kModel + kTiny + " --noise " + kIo +
                                    " --dtype fp32 --device cpu --dump " + dump.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto out = core::SafetensorsFile::open(dump);
    const auto ref = core::SafetensorsFile::open(kIo);
    const at::Tensor output = out->tensor("output");
    ASSERT_EQ(output.sizes(), (at::IntArrayRef{1, 9, 16, 4, 8}));
    const double output_err = rel_l2(output, ref->tensor("fp32/output"));
    std::printf("  output rel_l2 %.3e\n", output_err);
    EXPECT_LE(output_err, kFp32RelL2);
    for (int b = 0; b < 3; ++b) {
        for (int j = 0; j < 4; ++j) {
            const std::string name = "x0_b" + std::to_string(b) + "_s" + std::to_string(j);
            ASSERT_TRUE(out->contains(name)) << name;
            const double err = rel_l2(out->tensor(name), ref->tensor("fp32/" + name));
            std::printf("  %s rel_l2 %.3e\n", name.c_str(), err);
            EXPECT_LE(err, kFp32RelL2) << name;
        }
    }
    EXPECT_EQ(out->tensors().size(), 1u + 3 * 4);
}

// bf16 against the bf16 reference, with the golden test's bound: both round after every op, in
// slightly different places, over 15 chained calls.
TEST(GenerateCli, Bf16DumpStaysCloseToTheBf16Reference) {
    TempDir dir;
    const fs::path dump = dir.path() / "out.safetensors";
    const CommandResult r = run_qvg("generate --model " + kModel + kTiny + " --noise " + kIo +
                                    " --dtype bf16 --device cpu --dump " + dump.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const at::Tensor output = core::SafetensorsFile::open(dump)->tensor("output");
    EXPECT_EQ(output.scalar_type(), at::kBFloat16);
    const double err = rel_l2(output, core::SafetensorsFile::open(kIo)->tensor("bf16/output"));
    std::printf("  bf16 output rel_l2 %.3e\n", err);
    EXPECT_LE(err, 2e-2);
}

TEST(GenerateCli, QvgReportHasTimingsBytesAndStageErrors) {
    TempDir dir;
    const fs::path report = dir.path() / "report.json";
    const CommandResult r =
        run_qvg("generate --model " + kModel + kTiny +
                " --seed 7 --cache qvg --span 3 --centroids 8 --iters 2 --device cpu --report " +
                report.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const nlohmann::json j = read_json(report);
    for (const char* key : {"blocks", "kv", "kv_bytes", "kv_bf16_bytes", "kv_ratio", "fps",
                            "device", "dtype", "config", "seed", "cache_policy"}) {
        EXPECT_TRUE(j.contains(key)) << key;
    }
    EXPECT_EQ(j["seed"], 7);
    EXPECT_EQ(j["dtype"], "bf16");
    EXPECT_EQ(j["device"], "cpu");
    EXPECT_EQ(j["config"]["dim"], 64);
    EXPECT_EQ(j["config"]["num_heads"], 2);
    EXPECT_EQ(j["cache_policy"]["method"], "qvg");
    EXPECT_EQ(j["cache_policy"]["span_frames"], 3);
    EXPECT_EQ(j["cache_policy"]["centroids"], 8);
    EXPECT_EQ(j["cache_policy"]["group"], 32);  // the default 64 capped at the head size
    EXPECT_GT(j["fps"].get<double>(), 0.0);

    ASSERT_EQ(j["blocks"].size(), 3u);
    for (const auto& b : j["blocks"]) {
        for (const char* key : {"dit_ms", "cache_ms", "vae_ms", "kv_bytes"}) {
            EXPECT_TRUE(b.contains(key)) << key;
        }
        EXPECT_GT(b["dit_ms"].get<double>(), 0.0);
    }
    // 4 denoising calls per block plus the clean pass, skipped on the last block.
    EXPECT_EQ(j["blocks"][0]["dit_calls"], 5);
    EXPECT_EQ(j["blocks"][2]["dit_calls"], 4);

    // Blocks 0 and 1 were committed: 6 frames = 2 spans of 3 frames of 8 tokens, nothing raw.
    const nlohmann::json& kv = j["kv"];
    EXPECT_EQ(kv["frames"], 6);
    const int64_t bf16_bytes = 2 /*layers*/ * 6 * 8 * 2 /*heads*/ * 32 * 2 /*K, V*/ * 2;
    EXPECT_EQ(kv["bf16_bytes"], bf16_bytes);
    EXPECT_EQ(j["kv_bf16_bytes"], bf16_bytes);
    EXPECT_GT(j["kv_ratio"].get<double>(), 1.0);
    EXPECT_LT(j["kv_bytes"].get<int64_t>(), bf16_bytes);
    ASSERT_EQ(kv["layers"].size(), 2u);
    int64_t layer_bytes = 0;
    for (const auto& layer : kv["layers"]) {
        EXPECT_EQ(layer["spans"], 2);
        EXPECT_EQ(layer["tail_frames"], 0);
        layer_bytes += layer["bytes"].get<int64_t>();
        for (const char* role : {"key", "value"}) {
            const auto& s = layer[role];
            ASSERT_EQ(s["last_stage_rel_error"].size(), 1u) << role;
            const double stage = s["last_stage_rel_error"][0].get<double>();
            EXPECT_GT(stage, 0.0) << role;
            EXPECT_LT(stage, 1.0) << role;
            EXPECT_GT(s["mean_rel_error"].get<double>(), 0.0) << role;
        }
    }
    EXPECT_EQ(layer_bytes, j["kv_bytes"].get<int64_t>());
}

TEST(GenerateCli, Bf16CacheWindowAndSinkBoundTheHistory) {
    TempDir dir;
    const fs::path report = dir.path() / "report.json";
    const fs::path dump = dir.path() / "out.safetensors";
    const CommandResult r =
        run_qvg("generate --model " + kModel + kTiny + " --window 2 --sink 1 --device cpu " +
                "--report " + report.string() + " --dump " + dump.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const nlohmann::json j = read_json(report);
    EXPECT_EQ(j["cache_policy"]["method"], "bf16");
    EXPECT_EQ(j["cache_policy"]["window_frames"], 2);
    EXPECT_EQ(j["kv"]["frames"], 3);  // 1 sink frame + a window of 2
    EXPECT_EQ(j["kv"]["first_frame"], 4);
    EXPECT_DOUBLE_EQ(j["kv_ratio"].get<double>(), 1.0);
    const at::Tensor output = core::SafetensorsFile::open(dump)->tensor("output");
    EXPECT_EQ(output.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(at::isfinite(output).all().item<bool>());
}

// Whether -o works depends on the build; `generate --help` says which, and both answers are
// checked against what -o then does.
TEST(GenerateCli, OutputOptionMatchesTheBuild) {
    const CommandResult help = run_qvg("generate --help");
    ASSERT_EQ(help.exit_code, 0) << help.output;
    const bool has_mp4 = help.output.find("no MP4 support") == std::string::npos;
    TempDir dir;
    const fs::path mp4 = dir.path() / "out.mp4";
    const CommandResult r =
        run_qvg("generate --model " + kModel + kText + kSize +
                " --latent-frames 3 --device cpu --vae " + kVae + " -o " + mp4.string());
    if (has_mp4) {
        ASSERT_EQ(r.exit_code, 0) << r.output;
        EXPECT_EQ(read_file(mp4).substr(4, 4), "ftyp");
        const fs::path no_vae = dir.path() / "no_vae.mp4";
        const CommandResult e =
            run_qvg("generate --model " + kModel + kTiny + " --device cpu -o " + no_vae.string());
        EXPECT_EQ(e.exit_code, 1);
        EXPECT_NE(e.output.find("needs --vae"), std::string::npos) << e.output;
        EXPECT_FALSE(fs::exists(no_vae));
    } else {
        EXPECT_EQ(r.exit_code, 1);
        EXPECT_NE(r.output.find("this build has no MP4 support"), std::string::npos) << r.output;
        EXPECT_FALSE(fs::exists(mp4));
    }
}

#ifdef QVG_HAVE_FFMPEG
TEST(GenerateCli, WritesAnMp4ThroughTheStreamingVae) {
    TempDir dir;
    const fs::path mp4 = dir.path() / "out.mp4";
    const fs::path report = dir.path() / "report.json";
    const CommandResult r = run_qvg("generate --model " + kModel + kTiny + " --device cpu --vae " +
                                    kVae + " -o " + mp4.string() + " --report " + report.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const render::Mp4Info info = render::probe_mp4(mp4);
    constexpr int64_t kLatentFrames = 9;
    EXPECT_EQ(info.frame_count, 1 + 4 * (kLatentFrames - 1));
    EXPECT_EQ(info.width, 64);
    EXPECT_EQ(info.height, 32);
    EXPECT_EQ(info.codec_name, "h264");
    EXPECT_EQ(info.pix_fmt, "yuv420p");
    ASSERT_EQ(static_cast<int64_t>(info.pts_s.size()), info.frame_count);
    for (size_t i = 0; i < info.pts_s.size(); ++i) {
        EXPECT_NEAR(info.pts_s[i], static_cast<double>(i) / 16.0, 1e-9) << "frame " << i;
    }
    // Each block's frames were decoded as it was produced: 1 + 4 + 4 latent frames' worth.
    const nlohmann::json j = read_json(report);
    ASSERT_EQ(j["blocks"].size(), 3u);
    EXPECT_EQ(j["blocks"][0]["video_frames"], 9);
    EXPECT_EQ(j["blocks"][1]["video_frames"], 12);
    EXPECT_EQ(j["blocks"][2]["video_frames"], 12);
    EXPECT_EQ(j["video_frames"], 33);
    EXPECT_GT(j["blocks"][0]["vae_ms"].get<double>(), 0.0);
}
#endif

TEST(GenerateCli, CallerMistakesExitOneWithAClearMessage) {
    TempDir dir;
    auto expect_error = [](const std::string& args, const std::string& message) {
        const CommandResult r = run_qvg(args);
        EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
        EXPECT_NE(r.output.find(message), std::string::npos) << args << "\n" << r.output;
        EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
    };
    const std::string report = " --report " + (dir.path() / "r.json").string();
    const std::string rest = kTiny + " --device cpu" + report;
    // Everything but the text embedding, the frame count or the size.
    const std::string no_text = " --latent-frames 9" + kSize + " --device cpu" + report;
    const std::string no_frames = kText + kSize + " --device cpu" + report;
    const std::string no_size = kText + " --latent-frames 9 --device cpu" + report;

    expect_error("generate --model " + (dir.path() / "none").string() + rest, "model not found");

    write_file(dir.path() / "garbage.safetensors", "this is not a weights file at all");
    expect_error("generate --model " + (dir.path() / "garbage.safetensors").string() + rest,
                 "garbage.safetensors");

    // A model directory whose weights file is cut short.
    const fs::path cut = dir.path() / "cut";
    fs::create_directories(cut);
    fs::copy_file(test_data("self_forcing_tiny/config.json"), cut / "config.json");
    const std::string weights = read_file(test_data("self_forcing_tiny/weights.safetensors"));
    write_file(cut / "weights.safetensors", weights.substr(0, weights.size() / 2));
    expect_error("generate --model " + cut.string() + rest, "weights.safetensors");

    core::save_safetensors(dir.path() / "text31.safetensors",
                           {{"text_embeds", at::zeros({1, 16, 31})}});
    expect_error("generate --model " + kModel + no_text + " --text-embedding " +
                     (dir.path() / "text31.safetensors").string(),
                 "has dimension 31 ([1, 16, 31]), the model expects text_dim 32");

    expect_error("generate --model " + kModel + no_frames + " --latent-frames 4",
                 "--latent-frames 4 is not a positive multiple of 3");
    expect_error("generate --model " + kModel + no_size + " --height 40 --width 64",
                 "must be positive multiples of 16");
    expect_error("generate --model " + kModel + rest + " --cache int3",
                 "--cache: unknown codec 'int3'");
    expect_error("generate --model " + kModel + rest + " --cache qvg --span 3 --centroids 100",
                 "only 24 tokens");
    expect_error("generate --model " + kModel + rest + " --noise " + kVae, "no tensor 'noise'");
    expect_error("generate --model " + kModel + rest + " --vae " + kIo, "not a Wan2.1 VAE");
    expect_error("generate --model " + kModel + kTiny + " --device cpu", "nothing to write");
    EXPECT_FALSE(fs::exists(dir.path() / "r.json"));

    const CommandResult unknown = run_qvg("generate --model " + kModel + rest + " --bogus");
    EXPECT_NE(unknown.exit_code, 0);
    EXPECT_NE(unknown.output.find("--bogus"), std::string::npos) << unknown.output;
}

}  // namespace
}  // namespace qvg
