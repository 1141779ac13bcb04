#include <qvg/world/dataset.h>

#include <qvg/input/trajectory.h>

#include "test_util.h"
#include "world_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <stdexcept>

namespace qvg::world {
namespace {

using input::Action;
using input::Rotation;
using input::Translation;

ClipOptions options(int side, int frames_per_latent = 4) {
    ClipOptions o;
    o.render.width = side;
    o.render.height = side;
    o.frames_per_latent = frames_per_latent;
    return o;
}

double pose_distance(const input::CameraState& a, const input::CameraState& b) {
    return std::max({std::abs(a.position.x - b.position.x), std::abs(a.position.y - b.position.y),
                     std::abs(a.position.z - b.position.z), std::abs(a.yaw_deg - b.yaw_deg),
                     std::abs(a.pitch_deg - b.pitch_deg)});
}

TEST(Dataset, ClipLayout) {
    const World& w = test_world(1);
    const ActionList actions = repeat_action({Translation::kForward, Rotation::kYawRight}, 5);
    const Clip clip = make_clip(w, w.spawn(), actions, options(32, 3));
    EXPECT_EQ(clip.latent_count(), 5);
    EXPECT_EQ(clip.frame_count(), 15);
    EXPECT_EQ(clip.frames.size(), 15u * 32 * 32 * 3);
    EXPECT_EQ(clip.labels, std::vector<int>(5, 9 * 1 + 1));
    // Each latent's last frame sits at its pose; turning 3 degrees per latent, a third per frame.
    for (int k = 0; k < 5; ++k) {
        EXPECT_EQ(pose_distance(clip.frame_poses[std::size_t(3 * k + 2)],
                                clip.latent_poses[std::size_t(k)]),
                  0.0);
        EXPECT_NEAR(clip.latent_poses[std::size_t(k)].yaw_deg, 3.0 * (k + 1), 1e-12);
    }
    EXPECT_NEAR(clip.frame_poses[0].yaw_deg, 1.0, 1e-12);
    // Frames are the renders of their poses.
    const Image f7 = render(w, clip.frame_poses[7], options(32).render);
    EXPECT_TRUE(std::equal(f7.rgb.begin(), f7.rgb.end(), clip.frame(7).begin()));
    EXPECT_THROW(clip.frame(15), std::out_of_range);

    ClipOptions no_draw = options(32, 3);
    no_draw.draw = false;
    const Clip poses_only = make_clip(w, w.spawn(), actions, no_draw);
    EXPECT_TRUE(poses_only.frames.empty());
    EXPECT_EQ(pose_distance(poses_only.latent_poses.back(), clip.latent_poses.back()), 0.0);
    EXPECT_THROW(make_clip(w, w.spawn(), actions, options(32, 0)), std::invalid_argument);
}

TEST(Dataset, CameraFollowsTheGround) {
    const World& w = test_world(1);
    const Clip clip =
        make_clip(w, w.spawn(), repeat_action({Translation::kForward, Rotation::kNone}, 30), [] {
            ClipOptions o;
            o.draw = false;
            return o;
        }());
    for (const input::CameraState& s : clip.frame_poses) {
        EXPECT_NEAR(w.altitude_m(s) - w.ground_height_m(w.map_x_m(s), w.map_z_m(s)), 1.8, 1e-9);
    }
    EXPECT_NEAR(clip.latent_poses.back().position.z, 30 * 0.08, 1e-9);
}

// A square loop ends where it started and draws the very same image there.
TEST(Dataset, LoopReturnsToTheStartAndRendersTheSameImage) {
    const World& w = test_world(1);
    const input::ActionStep step;
    const ActionList loop = square_loop(12, step);
    EXPECT_EQ(loop.size(), 4u * (12 + 30));
    const Clip clip = make_clip(w, w.spawn(), loop, options(64));
    const input::CameraState& end = clip.latent_poses.back();
    EXPECT_LT(pose_distance(end, clip.start), 1e-9);
    const Image start_view = render(w, clip.start, options(64).render);
    const auto last = clip.frame(clip.frame_count() - 1);
    EXPECT_TRUE(std::equal(start_view.rgb.begin(), start_view.rgb.end(), last.begin()));
    // Half way round it is somewhere else entirely.
    const auto middle = clip.frame(clip.frame_count() / 2 - 1);
    int differ = 0;
    for (std::size_t i = 0; i < middle.size(); ++i) differ += middle[i] != start_view.rgb[i];
    EXPECT_GT(differ, int(middle.size() / 4));
}

// Out and back: each place of the way out is revisited on the way back, and the end is the start.
TEST(Dataset, OutAndBackRevisits) {
    const World& w = test_world(1);
    const input::ActionStep step;
    const int out = 10;
    const Clip clip = make_clip(w, w.spawn(), out_and_back(out, step), options(64));
    const int turn = latents_for_turn(180.0, step);
    // Latent k on the way out and latent 2 * out + turn - 2 - k on the way back stand on one spot.
    for (int k = 0; k < out - 1; ++k) {
        const auto& a = clip.latent_poses[std::size_t(k)];
        const auto& b = clip.latent_poses[std::size_t(out + turn + (out - 2 - k))];
        EXPECT_NEAR(a.position.x, b.position.x, 1e-9);
        EXPECT_NEAR(a.position.z, b.position.z, 1e-9);
    }
    EXPECT_LT(pose_distance(clip.latent_poses.back(), clip.start), 1e-9);
    const Image start_view = render(w, clip.start, options(64).render);
    const auto last = clip.frame(clip.frame_count() - 1);
    EXPECT_TRUE(std::equal(start_view.rgb.begin(), start_view.rgb.end(), last.begin()));
    EXPECT_THROW(out_and_back(3, input::ActionStep{0.08, 7.0, 35.0}), std::invalid_argument);
}

TEST(Dataset, RandomWalksAreSeededAndTheirPosesCarryTheirLabels) {
    const World& w = test_world(1);
    const input::ActionStep step;
    RandomWalkOptions o;
    o.latents = 200;
    const ActionList a = random_walk(11, o, step);
    EXPECT_EQ(a, random_walk(11, o, step));
    EXPECT_NE(a, random_walk(12, o, step));
    std::set<int> labels;
    for (const Action& x : a) labels.insert(x.label());
    EXPECT_GT(labels.size(), 15u);  // a varied mix of actions

    ClipOptions no_draw;
    no_draw.draw = false;
    const Clip clip = make_clip(w, w.spawn(), a, no_draw);
    double max_pitch = 0.0;
    for (const auto& s : clip.latent_poses) max_pitch = std::max(max_pitch, std::abs(s.pitch_deg));
    EXPECT_LE(max_pitch, o.max_pitch_deg + 1e-9);
    // Upstream's labelling rule applied to the walked poses gives back the actions taken. Level
    // (heights zeroed) it must agree everywhere; with the terrain following, a steep climb seen
    // from a pitched camera can leave the rule's 60 degree cone, which happens rarely.
    auto agreement = [&](bool level) {
        auto c2w_of = [&](input::CameraState s) {
            if (level) s.position.y = 0.0;
            return input::camera_to_world(s);
        };
        std::vector<input::Mat4> c2w = {c2w_of(clip.start)};
        for (const auto& s : clip.latent_poses) c2w.push_back(c2w_of(s));
        const std::vector<int> from_poses = input::labels_from_poses(c2w);
        int agree = 0;
        for (std::size_t k = 0; k < a.size(); ++k) agree += from_poses[k + 1] == clip.labels[k];
        return agree;
    };
    EXPECT_EQ(agreement(true), int(a.size()));
    EXPECT_GE(agreement(false), int(a.size()) * 95 / 100);
}

TEST(Dataset, TrajectoryFileReplaysExactly) {
    const World& w = test_world(1);
    RandomWalkOptions o;
    o.latents = 12;
    const Clip clip = make_clip(w, w.spawn(), random_walk(3, o, input::ActionStep{}), options(48));
    TempDir dir;
    input::save_trajectory(dir.path() / "walk.json", clip.trajectory(1));
    const input::Trajectory t = input::load_trajectory(dir.path() / "walk.json");
    EXPECT_EQ(t.seed, 1u);
    const Clip again = replay(w, t);
    EXPECT_EQ(again.frames, clip.frames);
    EXPECT_EQ(again.labels, clip.labels);

    // The same file in another world parts from its poses at once.
    const World other(WorldConfig{99, 512, 25.0, 1.8});
    EXPECT_THROW(replay(other, t), std::runtime_error);
}

}  // namespace
}  // namespace qvg::world
