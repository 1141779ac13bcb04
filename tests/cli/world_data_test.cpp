// The training clips of the built-in world: the same clip for a seed however many threads draw
// the batch.
#include <gtest/gtest.h>

#include <world_data.h>

#include <qvg/core/rng.h>
#include <qvg/world/world.h>

namespace qvg::cli {
namespace {

TEST(WorldData, BatchesAreTheSameClipsOnAnyNumberOfThreads) {
    const world::World world(world::WorldConfig{.seed = 1, .map_size = 256});
    ClipRequest request;
    request.latents = 3;
    request.image_size = 24;
    request.frames_per_latent = 2;
    const std::uint64_t base = 77;
    const auto one = make_world_clips(world, request, base, 3, 1);
    const auto many = make_world_clips(world, request, base, 3, 5);
    ASSERT_EQ(one.size(), 3U);
    ASSERT_EQ(many.size(), 3U);
    for (int i = 0; i < 3; ++i) {
        ClipRequest r = request;
        r.seed = core::Rng::mix(base, static_cast<std::uint64_t>(i));
        const world::Clip alone = make_world_clip(world, r);
        ASSERT_EQ(alone.frame_count(), 6);
        EXPECT_EQ(one[i].frames, alone.frames) << "clip " << i;
        EXPECT_EQ(many[i].frames, alone.frames) << "clip " << i;
        EXPECT_EQ(many[i].labels, alone.labels) << "clip " << i;
        ASSERT_EQ(many[i].frame_poses.size(), alone.frame_poses.size());
        for (std::size_t f = 0; f < alone.frame_poses.size(); ++f) {
            EXPECT_EQ(many[i].frame_poses[f].position.x, alone.frame_poses[f].position.x);
            EXPECT_EQ(many[i].frame_poses[f].yaw_deg, alone.frame_poses[f].yaw_deg);
        }
    }
    EXPECT_NE(one[0].frames, one[1].frames);  // different seeds, different clips
}

}  // namespace
}  // namespace qvg::cli
