// The scripted trajectories of qvg eval that need more than a fixed action per latent.

#include <gtest/gtest.h>

#include <eval_trajectories.h>

#include <qvg/core/error.h>
#include <qvg/world/world.h>

namespace qvg::cli {
namespace {

using input::Translation;

TEST(EvalTrajectories, ReturnPrimesWithTheWayOutAndGeneratesTheWayBack) {
    const world::World world(world::WorldConfig{.seed = 1, .map_size = 256});
    EvalTrajectoryRequest r;
    r.name = "return";
    r.seed = 7;
    r.context_latents = 2;
    r.frames = 40;  // 10 latents back, so 10 seen on the way out
    r.image_size = 16;
    const EvalTrajectory t = make_eval_trajectory(world, r);
    const int c = 2, n = 10;
    ASSERT_EQ(t.context_latents, c + n);
    ASSERT_EQ(t.generated_latents, n);
    ASSERT_EQ(t.clip.latent_count(), c + 2 * n);
    EXPECT_EQ(t.generated_frames(), 40);
    for (int i = 0; i < c; ++i) EXPECT_EQ(t.clip.actions[i].translation, Translation::kNone);
    for (int i = c; i < c + n; ++i) EXPECT_EQ(t.clip.actions[i].translation, Translation::kForward);
    for (int i = c + n; i < c + 2 * n; ++i) {
        EXPECT_EQ(t.clip.actions[i].translation, Translation::kBackward);
    }
    // The way back passes every place of the way out in reverse, facing the same way, and ends
    // where the walk began.
    const auto& p = t.clip.latent_poses;
    for (int j = 0; j < n; ++j) {
        const input::CameraState& back = p[static_cast<size_t>(c + n + j)];
        const input::CameraState& out = p[static_cast<size_t>(c + n - 2 - j)];
        SCOPED_TRACE(j);
        EXPECT_NEAR(back.position.x, out.position.x, 1e-9);
        EXPECT_NEAR(back.position.y, out.position.y, 1e-9);
        EXPECT_NEAR(back.position.z, out.position.z, 1e-9);
        EXPECT_EQ(back.yaw_deg, out.yaw_deg);
    }
    EXPECT_GT(std::abs(p[static_cast<size_t>(c + n - 1)].position.x - p[0].position.x) +
                  std::abs(p[static_cast<size_t>(c + n - 1)].position.z - p[0].position.z),
              0.5);  // it did walk out
}

TEST(EvalTrajectories, UnknownNamesAreRefused) {
    EXPECT_NO_THROW(check_eval_trajectory("return"));
    EXPECT_THROW(check_eval_trajectory("returns"), core::Error);
}

}  // namespace
}  // namespace qvg::cli
