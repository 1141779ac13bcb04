// The built-in world model (assets/world/world_model.safetensors) loads and runs on the CPU:
// `qvg generate` without --model finds it in the source tree, and its short rollouts along the
// trained world beat copying the last ground-truth frame by a margin (the model card's numbers
// for these walks: forward +2.65 dB, random +2.12 dB over 64 frames; the bounds leave room for
// other CPUs' rounding, not for a broken model).

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "test_util.h"

namespace qvg {
namespace {

namespace fs = std::filesystem;

const fs::path kAsset =
    (test_data("") / ".." / ".." / "assets" / "world" / "world_model.safetensors")
        .lexically_normal();

nlohmann::json rollout(const std::string& walk, const fs::path& report) {
    // No --model: the default lookup ($QVG_WORLD_MODEL empty, nothing installed) ends in the
    // source tree.
    const CommandResult r = run_qvg(
        "generate --device cpu --threads 1 --latent-frames 16 --seed 0 "
        "--walk " +
            walk + " --report " + report.string(),
        "QVG_WORLD_MODEL=");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(read_file(report));
}

TEST(BuiltInWorld, ShortRolloutsBeatCopyingTheLastFrame) {
    ASSERT_TRUE(fs::is_regular_file(kAsset)) << kAsset;
    TempDir dir;
    const nlohmann::json forward = rollout("forward", dir.path() / "forward.json");
    EXPECT_EQ(fs::path(forward["model"].get<std::string>()).lexically_normal(), kAsset);
    EXPECT_EQ(forward["video_frames"], 64);
    EXPECT_EQ(forward["world_seed"], 1);
    EXPECT_GT(forward["mean_psnr"].get<double>(), forward["mean_copy_psnr"].get<double>() + 2.0);
    EXPECT_GT(forward["mean_psnr"].get<double>(), 17.5);
    const nlohmann::json random = rollout("random", dir.path() / "random.json");
    EXPECT_GT(random["mean_psnr"].get<double>(), random["mean_copy_psnr"].get<double>() + 1.5);
    // The weights record the clip length they were trained on; the history is held to it.
    EXPECT_EQ(forward["cache_policy"]["window_frames"], 15);
}

}  // namespace
}  // namespace qvg
