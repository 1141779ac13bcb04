// The built-in world model (assets/world/world_model.safetensors) loads and runs on the CPU:
// `qvg generate` without --model finds it in the source tree, and its rollouts along the trained
// world beat copying the last ground-truth frame by a margin. The model card's numbers for these
// walks (seed 0, one thread; DiT step 26,000, width-64 decoder step 26,801): forward 16 latents
// +4.20 dB, mixed 16 latents +3.54 dB, forward 32 latents (128 frames) +2.31 dB. The bounds
// leave room for other CPUs' rounding, not for a broken model. Random walks vary too much
// from seed to seed for one of them to be a test (-0.4 to +7.3 dB over seeds 0-3).
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

nlohmann::json rollout(const std::string& walk, int latents, const fs::path& report) {
    // No --model: the default lookup ($QVG_WORLD_MODEL empty, nothing installed) ends in the
    // source tree.
    const CommandResult r =
        run_qvg("generate --device cpu --threads 1 --latent-frames " + std::to_string(latents) +
                    " --seed 0 --walk " + walk + " --report " + report.string(),
                "QVG_WORLD_MODEL=");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(read_file(report));
}

TEST(BuiltInWorld, RolloutsBeatCopyingTheLastFrame) {
    ASSERT_TRUE(fs::is_regular_file(kAsset)) << kAsset;
    TempDir dir;
    const nlohmann::json forward = rollout("forward", 16, dir.path() / "forward.json");
    EXPECT_EQ(fs::path(forward["model"].get<std::string>()).lexically_normal(), kAsset);
    EXPECT_EQ(forward["video_frames"], 64);
    EXPECT_EQ(forward["world_seed"], 1);
    EXPECT_GT(forward["mean_psnr"].get<double>(), forward["mean_copy_psnr"].get<double>() + 3.0);
    EXPECT_GT(forward["mean_psnr"].get<double>(), 18.5);
    const nlohmann::json mixed = rollout("mixed", 16, dir.path() / "mixed.json");
    EXPECT_GT(mixed["mean_psnr"].get<double>(), mixed["mean_copy_psnr"].get<double>() + 3.0);
    const nlohmann::json longer = rollout("forward", 32, dir.path() / "forward32.json");
    EXPECT_EQ(longer["video_frames"], 128);
    EXPECT_GT(longer["mean_psnr"].get<double>(), longer["mean_copy_psnr"].get<double>() + 1.5);
    // The weights record the clip length they were trained on (64 latents); the history is held
    // to it.
    EXPECT_EQ(forward["cache_policy"]["window_frames"], 63);
}

}  // namespace
}  // namespace qvg
