// Revisit frames found from poses: a closed square loop revisits its start only while the last
// turn faces the first heading again, a straight walk never revisits, walking back revisits the
// way out, and the gap, distance and angle limits are honoured.

#include <qvg/world/dataset.h>
#include <qvg/world/revisits.h>
#include <qvg/world/walks.h>

#include "world_test_util.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace qvg::world {
namespace {

using input::Action;
using input::Rotation;
using input::Translation;

Clip poses_only(const ActionList& actions) {
    ClipOptions o;
    o.draw = false;
    const World& w = test_world(1);
    return make_clip(w, w.spawn(), actions, o);
}

TEST(Revisits, SquareLoopRevisitsItsStartAtTheEnd) {
    const input::ActionStep step;
    const Clip clip = poses_only(square_loop(4, step));
    const int n = clip.frame_count();
    ASSERT_EQ(n, 4 * 4 * (4 + 30));
    const auto revisits = find_revisits(test_world(1), clip.frame_poses, RevisitOptions{});
    // The last turn sweeps 270 -> 360 degrees at 0.75 degrees per frame; the frames within 30
    // degrees of the first heading are its last 41.
    ASSERT_FALSE(revisits.empty());
    EXPECT_NEAR(static_cast<double>(revisits.size()), 41.0, 1.0);
    for (const Revisit& r : revisits) {
        EXPECT_GE(r.frame, n - 42);
        EXPECT_EQ(r.first_seen, 0);
        EXPECT_LE(r.last_seen, 8);  // within 4 m of the start at 0.5 m per frame
        EXPECT_LE(r.distance_m, 4.0);
        EXPECT_LE(r.angle_deg, 30.0);
        EXPECT_GE(r.frame - r.last_seen, 64);
    }
    EXPECT_EQ(revisits.back().frame, n - 1);
    // Only frames from from_frame on are candidates; earlier frames still count as seen.
    const auto tail = find_revisits(test_world(1), clip.frame_poses, RevisitOptions{}, n - 10);
    ASSERT_EQ(tail.size(), 10u);
    EXPECT_EQ(tail.front().frame, n - 10);
    EXPECT_EQ(tail.front().first_seen, 0);
}

TEST(Revisits, StraightWalkHasNoneAndWalkingBackRevisitsTheWayOut) {
    const World& w = test_world(1);
    EXPECT_TRUE(
        find_revisits(
            w, poses_only(repeat_action({Translation::kForward, Rotation::kNone}, 64)).frame_poses,
            RevisitOptions{})
            .empty());
    ActionList back_and_forth = repeat_action({Translation::kForward, Rotation::kNone}, 32);
    const ActionList back = repeat_action({Translation::kBackward, Rotation::kNone}, 32);
    back_and_forth.insert(back_and_forth.end(), back.begin(), back.end());
    const Clip clip = poses_only(back_and_forth);
    RevisitOptions o;
    o.min_gap_frames = 32;
    const auto revisits = find_revisits(w, clip.frame_poses, o);
    ASSERT_FALSE(revisits.empty());
    for (const Revisit& r : revisits) {
        EXPECT_GE(r.frame, 128 + 8);  // on the way back, at least 32 frames after the turn
        // Frame k on the way out stands (k + 1) / 2 m from the start, frame 128 + d on the way
        // back (127 - d) / 2 m: frame j passes where frame 254 - j was, and matches within 4 m
        // are at most 8 frames from there.
        EXPECT_NEAR(r.last_seen, 254 - r.frame, 8);
        EXPECT_LT(r.angle_deg, 1e-6);  // same heading both ways
    }
    // A tighter distance keeps only closer matches; a longer gap removes the early way back.
    RevisitOptions tight = o;
    tight.max_distance_m = 1.0;
    RevisitOptions longer = o;
    longer.min_gap_frames = 128;
    const auto t = find_revisits(w, clip.frame_poses, tight);
    const auto l = find_revisits(w, clip.frame_poses, longer);
    for (const Revisit& r : t) EXPECT_LE(r.distance_m, 1.0);
    for (const Revisit& r : l) EXPECT_GE(r.frame - r.last_seen, 128);
    EXPECT_LT(l.size(), revisits.size());
    EXPECT_FALSE(l.empty());
}

TEST(Revisits, RejectsBadOptions) {
    const Clip clip = poses_only(repeat_action({}, 4));
    RevisitOptions bad;
    bad.min_gap_frames = -1;
    EXPECT_THROW(find_revisits(test_world(1), clip.frame_poses, bad), std::invalid_argument);
    EXPECT_THROW(find_revisits(test_world(1), clip.frame_poses, {}, 17), std::invalid_argument);
    EXPECT_TRUE(find_revisits(test_world(1), clip.frame_poses, {}, 16).empty());
}

}  // namespace
}  // namespace qvg::world
