#include <qvg/input/action.h>

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

namespace qvg::input {
namespace {

TEST(Action, LabelRoundTripsForAll81) {
    for (int label = 0; label < kActionCount; ++label) {
        const Action a = Action::from_label(label);
        EXPECT_EQ(a.label(), label);
        EXPECT_EQ(static_cast<int>(a.translation), label / 9);
        EXPECT_EQ(static_cast<int>(a.rotation), label % 9);
    }
    EXPECT_THROW(Action::from_label(-1), std::out_of_range);
    EXPECT_THROW(Action::from_label(81), std::out_of_range);
}

TEST(Action, ControlsRoundTripForAll81) {
    std::vector<ControlSet> seen;
    for (int label = 0; label < kActionCount; ++label) {
        const ControlSet controls = controls_for(Action::from_label(label));
        EXPECT_EQ(action_from_controls(controls).label(), label);
        for (const ControlSet& other : seen) EXPECT_FALSE(other == controls) << label;
        seen.push_back(controls);
    }
}

// Upstream's one-hot -> index tables (config.json action_labels.onehot_to_index), the same for the
// translation (forward, backward, right, left) and rotation (yaw right, yaw left, up, down) halves.
TEST(Action, MatchesUpstreamOneHotTables) {
    const std::array<std::array<bool, 4>, 9> onehots = {{{0, 0, 0, 0},
                                                         {1, 0, 0, 0},
                                                         {0, 1, 0, 0},
                                                         {0, 0, 1, 0},
                                                         {0, 0, 0, 1},
                                                         {1, 0, 1, 0},
                                                         {1, 0, 0, 1},
                                                         {0, 1, 1, 0},
                                                         {0, 1, 0, 1}}};
    for (int i = 0; i < 9; ++i) {
        const auto& h = onehots[static_cast<std::size_t>(i)];
        ControlSet t;
        t.set(Control::kForward, h[0]);
        t.set(Control::kBackward, h[1]);
        t.set(Control::kRight, h[2]);
        t.set(Control::kLeft, h[3]);
        EXPECT_EQ(action_from_controls(t).label(), 9 * i);
        ControlSet r;
        r.set(Control::kYawRight, h[0]);
        r.set(Control::kYawLeft, h[1]);
        r.set(Control::kPitchUp, h[2]);
        r.set(Control::kPitchDown, h[3]);
        EXPECT_EQ(action_from_controls(r).label(), i);
    }
}

TEST(Action, OppositeControlsCancel) {
    EXPECT_EQ(action_from_controls({Control::kForward, Control::kBackward}).label(), 0);
    EXPECT_EQ(
        action_from_controls({Control::kForward, Control::kBackward, Control::kRight}).translation,
        Translation::kRight);
    EXPECT_EQ(
        action_from_controls({Control::kYawLeft, Control::kYawRight, Control::kPitchUp}).rotation,
        Rotation::kPitchUp);
}

// Every label, applied from a spread of starting poses, is read back by upstream's rule.
TEST(Action, PoseUpdateThenLabelFromMotionRecoversEveryLabel) {
    const ActionStep step;
    const std::vector<CameraState> starts = {{{0, 0, 0}, 0, 0},           {{1.5, -0.3, 2}, 37, 10},
                                             {{-4, 0.2, 0.7}, -120, -20}, {{0, 0, 0}, 179, 25},
                                             {{3, 1, -2}, -90, -30},      {{0.01, 0, 0}, 90, 5}};
    for (const CameraState& start : starts) {
        for (int label = 0; label < kActionCount; ++label) {
            const Action a = Action::from_label(label);
            const CameraState next = apply_action(start, a, step);
            EXPECT_EQ(action_from_motion(camera_to_world(start), camera_to_world(next)).label(),
                      label)
                << "label " << label << " from yaw " << start.yaw_deg << " pitch "
                << start.pitch_deg;
        }
    }
}

TEST(Action, PoseUpdateMovesTheUpstreamDistances) {
    const ActionStep step;  // 0.08 units, 3 degrees
    const CameraState s0;
    const CameraState w = apply_action(s0, Action{Translation::kForward, Rotation::kNone}, step);
    EXPECT_DOUBLE_EQ(w.position.z, 0.08);
    EXPECT_DOUBLE_EQ(w.position.x, 0.0);
    const CameraState d = apply_action(s0, Action{Translation::kRight, Rotation::kNone}, step);
    EXPECT_DOUBLE_EQ(d.position.x, 0.08);
    const CameraState r = apply_action(s0, Action{Translation::kNone, Rotation::kRightUp}, step);
    EXPECT_DOUBLE_EQ(r.yaw_deg, 3.0);
    EXPECT_DOUBLE_EQ(r.pitch_deg, 3.0);
    // A quarter of the step, four times, is one step.
    CameraState q = s0;
    for (int i = 0; i < 4; ++i)
        q = apply_action(q, Action{Translation::kNone, Rotation::kYawLeft}, step, 0.25);
    EXPECT_DOUBLE_EQ(q.yaw_deg, -3.0);
    // Custom step sizes.
    const ActionStep big{0.5, 10.0, 35.0};
    const CameraState b =
        apply_action(s0, Action{Translation::kBackward, Rotation::kYawRight}, big);
    EXPECT_DOUBLE_EQ(b.yaw_deg, 10.0);
    EXPECT_NEAR(b.position.z, -0.5 * std::cos(10.0 * std::numbers::pi / 180.0), 1e-12);
    EXPECT_NEAR(b.position.x, -0.5 * std::sin(10.0 * std::numbers::pi / 180.0), 1e-12);
    EXPECT_THROW(apply_action(s0, Action{}, step, -1.0), std::invalid_argument);
    EXPECT_THROW(apply_action(s0, Action{}, ActionStep{NAN, 3.0, 35.0}), std::invalid_argument);
}

TEST(Action, PitchIsClamped) {
    ActionStep step;
    step.max_pitch_deg = 10.0;
    CameraState s;
    for (int i = 0; i < 10; ++i)
        s = apply_action(s, Action{Translation::kNone, Rotation::kPitchUp}, step);
    EXPECT_DOUBLE_EQ(s.pitch_deg, 10.0);
    for (int i = 0; i < 10; ++i)
        s = apply_action(s, Action{Translation::kNone, Rotation::kPitchDown}, step);
    EXPECT_DOUBLE_EQ(s.pitch_deg, -10.0);
}

// The motions of the worldplay_tiny fixture (config.json inputs.motions), composed the way
// upstream's generate_camera_trajectory_local does (c2w = c2w @ [Ry(yaw) Rx(pitch) | R (right, 0,
// forward)]), and the labels upstream's pose_to_input gave them (inputs.action_labels).
TEST(Action, LabelsMatchUpstreamFixtureTrajectory) {
    struct Motion {
        double forward, right, yaw, pitch;
    };
    std::vector<Motion> motions;
    for (int i = 0; i < 3; ++i) motions.push_back({0.08, 0, 0, 0});
    for (int i = 0; i < 4; ++i) motions.push_back({0.08, 0, 20, 0});
    for (int i = 0; i < 4; ++i) motions.push_back({0, 0, -20, 0});
    for (int i = 0; i < 2; ++i) motions.push_back({0, 0.08, 0, 0});
    for (int i = 0; i < 2; ++i) motions.push_back({-0.08, 0.08, 0, 0});
    for (int i = 0; i < 4; ++i) motions.push_back({0.08, 0, 0, 3});
    for (int i = 0; i < 4; ++i) motions.push_back({0.08, -0.08, -3, -3});
    const std::vector<int> expected = {0,  9,  9,  9,  10, 10, 10, 10, 2,  2,  2,  2,
                                       27, 27, 63, 63, 12, 12, 12, 12, 62, 62, 62, 62};
    std::vector<Mat4> c2w = {identity4()};
    for (const Motion& m : motions) {
        Mat4 local = multiply(rotation_y(m.yaw), rotation_x(m.pitch));
        for (int r = 0; r < 3; ++r)
            local[4 * r + 3] = local[4 * r] * m.right + local[4 * r + 2] * m.forward;
        c2w.push_back(multiply(c2w.back(), local));
    }
    // Frame 4 of the fixture's traj_c2w: translation (0.0274, 0, 0.3152) after a 20 degree turn.
    EXPECT_NEAR(c2w[4][3], 0.0274, 1e-4);
    EXPECT_NEAR(c2w[4][11], 0.3152, 1e-4);
    EXPECT_EQ(labels_from_poses(c2w), expected);
}

TEST(Action, SmallMotionsAreNoAction) {
    const Mat4 a = identity4();
    Mat4 b = identity4();
    b[11] = 0.5e-4;  // under the 1e-4 translation threshold
    EXPECT_EQ(action_from_motion(a, b).label(), 0);
    const Mat4 tiny_turn = rotation_y(0.04);  // under 0.05 degrees
    EXPECT_EQ(action_from_motion(a, tiny_turn).label(), 0);
    EXPECT_EQ(action_from_motion(a, rotation_y(0.06)).rotation, Rotation::kYawRight);
    // Straight up is neither forward nor sideways: y is ignored.
    Mat4 up = identity4();
    up[7] = -1.0;
    EXPECT_EQ(action_from_motion(a, up).label(), 0);
}

}  // namespace
}  // namespace qvg::input
