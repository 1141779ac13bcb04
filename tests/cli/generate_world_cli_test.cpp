// qvg generate on a world model: the built-in default when no --model is given, an MP4 of the
// walk at the asked scale, the report (frames per second, PSNR against the ground truth, the
// cache), the history bound the weights record, and options that belong to Self-Forcing.

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/tiny_world.h"
#include "qvg/core/world_model.h"
#include "test_util.h"

#ifdef QVG_HAVE_FFMPEG
#include <qvg/render/mp4_probe.h>
#endif

namespace qvg {
namespace {

namespace fs = std::filesystem;

TEST(GenerateWorldCli, WritesTheReportOfAWalk) {
    TempDir dir;
    const fs::path model = save_tiny_world_model(dir.path());
    const fs::path report = dir.path() / "report.json";
    const CommandResult r = run_qvg("generate --model " + model.string() +
                                    " --device cpu --latent-frames 6 --walk forward --cache qvg "
                                    "--centroids 4 --span 2 --seed 3 --report " +
                                    report.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const nlohmann::json j = nlohmann::json::parse(read_file(report));
    EXPECT_EQ(j["kind"], "world model");
    EXPECT_EQ(j["latent_frames"], 6);
    EXPECT_EQ(j["video_frames"], 12);  // the tiny model: 2 frames per latent
    ASSERT_EQ(j["psnr"].size(), 12u);
    ASSERT_EQ(j["blocks"].size(), 6u);
    EXPECT_GT(j["fps"].get<double>(), 0.0);
    EXPECT_GT(j["mean_psnr"].get<double>(), 0.0);
    EXPECT_LT(j["mean_psnr"].get<double>(), 100.0);
    // 1 context + 6 generated latents, the last committed too.
    EXPECT_EQ(j["blocks"][5]["kv_frames"], 7);
    EXPECT_GT(j["blocks"][5]["cache_ms"].get<double>(), 0.0);
    // The same seed gives the same frames.
    const fs::path again = dir.path() / "again.json";
    ASSERT_EQ(run_qvg("generate --model " + model.string() +
                      " --device cpu --latent-frames 6 --walk forward --cache qvg --centroids 4 "
                      "--span 2 --seed 3 --report " +
                      again.string())
                  .exit_code,
              0);
    EXPECT_EQ(nlohmann::json::parse(read_file(again))["psnr"], j["psnr"]);
}

TEST(GenerateWorldCli, TheBuiltInModelIsTheDefaultAndItsHistoryIsBounded) {
    TempDir dir;
    // A model trained on clips of 3 latents holds at most 2.
    const core::WorldModel model =
        core::WorldModel::load(save_tiny_world_model(dir.path()), at::kCPU);
    const fs::path bounded = dir.path() / "bounded.safetensors";
    model.save(bounded, {{"qvg.clip_latents", "3"}});
    const fs::path report = dir.path() / "report.json";
    const CommandResult r =
        run_qvg("generate --device cpu --latent-frames 5 --report " + report.string(),
                "QVG_WORLD_MODEL=" + bounded.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("history held to at most 2 latent frames"), std::string::npos) << r.output;
    const nlohmann::json j = nlohmann::json::parse(read_file(report));
    EXPECT_EQ(j["model"], bounded.string());
    EXPECT_EQ(j["blocks"][4]["kv_frames"], 2);
    EXPECT_EQ(j["cache_policy"]["window_frames"], 2);
}

#ifdef QVG_HAVE_FFMPEG
TEST(GenerateWorldCli, WritesAnEnlargedMp4) {
    TempDir dir;
    const fs::path model = save_tiny_world_model(dir.path());
    const fs::path mp4 = dir.path() / "walk.mp4";
    const CommandResult r = run_qvg("generate --model " + model.string() +
                                    " --device cpu --latent-frames 4 --scale 3 -o " + mp4.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const render::Mp4Info info = render::probe_mp4(mp4);
    EXPECT_EQ(info.frame_count, 8);
    EXPECT_EQ(info.width, 48);  // 16 pixels x 3
    EXPECT_EQ(info.height, 48);
    EXPECT_EQ(info.codec_name, "h264");
}
#endif

TEST(GenerateWorldCli, SelfForcingOptionsAndBadValuesAreRefused) {
    TempDir dir;
    const fs::path model = save_tiny_world_model(dir.path());
    const std::string base = "generate --model " + model.string() + " --device cpu --report " +
                             (dir.path() / "r.json").string();
    auto expect_error = [](const CommandResult& r, const std::string& message) {
        EXPECT_EQ(r.exit_code, 1) << r.output;
        EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
    };
    expect_error(run_qvg(base + " --height 64"), "is a world model: --text-embedding");
    expect_error(run_qvg(base + " --walk sideways"), "--walk: unknown walk 'sideways'");
    expect_error(run_qvg("generate --model " + model.string() + " --device cpu"),
                 "nothing to write");
}

}  // namespace
}  // namespace qvg
