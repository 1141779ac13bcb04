#include <qvg/input/action.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace qvg::input {
namespace {

constexpr double kRadToDeg = 180.0 / std::numbers::pi;

// Signed axis amounts of a translation: (forward, right) in {-1, 0, 1}.
struct Axes {
    int first;
    int second;
};

Axes translation_axes(Translation t) {
    switch (t) {
        case Translation::kNone:
            return {0, 0};
        case Translation::kForward:
            return {1, 0};
        case Translation::kBackward:
            return {-1, 0};
        case Translation::kRight:
            return {0, 1};
        case Translation::kLeft:
            return {0, -1};
        case Translation::kForwardRight:
            return {1, 1};
        case Translation::kForwardLeft:
            return {1, -1};
        case Translation::kBackwardRight:
            return {-1, 1};
        case Translation::kBackwardLeft:
            return {-1, -1};
    }
    throw std::logic_error("translation_axes: unknown translation");
}

// (yaw, pitch) in {-1, 0, 1}: +1 is right, +1 is up.
Axes rotation_axes(Rotation r) {
    switch (r) {
        case Rotation::kNone:
            return {0, 0};
        case Rotation::kYawRight:
            return {1, 0};
        case Rotation::kYawLeft:
            return {-1, 0};
        case Rotation::kPitchUp:
            return {0, 1};
        case Rotation::kPitchDown:
            return {0, -1};
        case Rotation::kRightUp:
            return {1, 1};
        case Rotation::kRightDown:
            return {1, -1};
        case Rotation::kLeftUp:
            return {-1, 1};
        case Rotation::kLeftDown:
            return {-1, -1};
    }
    throw std::logic_error("rotation_axes: unknown rotation");
}

Translation translation_from_axes(int forward, int right) {
    static constexpr std::array<Translation, 9> kTable = {
        // right:  -1                     0                      +1
        Translation::kBackwardLeft, Translation::kBackward, Translation::kBackwardRight,  // back
        Translation::kLeft,         Translation::kNone,     Translation::kRight,          // none
        Translation::kForwardLeft,  Translation::kForward,  Translation::kForwardRight,   // fwd
    };
    return kTable[static_cast<std::size_t>(3 * (forward + 1) + (right + 1))];
}

Rotation rotation_from_axes(int yaw, int pitch) {
    static constexpr std::array<Rotation, 9> kTable = {
        // yaw:  -1                 0                     +1
        Rotation::kLeftDown, Rotation::kPitchDown, Rotation::kRightDown,  // pitch down
        Rotation::kYawLeft,  Rotation::kNone,      Rotation::kYawRight,   // no pitch
        Rotation::kLeftUp,   Rotation::kPitchUp,   Rotation::kRightUp,    // pitch up
    };
    return kTable[static_cast<std::size_t>(3 * (pitch + 1) + (yaw + 1))];
}

int axis(bool positive, bool negative) { return (positive ? 1 : 0) - (negative ? 1 : 0); }

void check_finite_non_negative(double v, const char* what) {
    if (!std::isfinite(v) || v < 0.0) {
        throw std::invalid_argument(std::string("apply_action: expected a finite, non-negative ") +
                                    what + ", got " + std::to_string(v));
    }
}

}  // namespace

Action Action::from_label(int label) {
    if (label < 0 || label >= kActionCount) {
        throw std::out_of_range("action label must be in 0..80, got " + std::to_string(label));
    }
    return {static_cast<Translation>(label / 9), static_cast<Rotation>(label % 9)};
}

std::string_view control_name(Control control) {
    switch (control) {
        case Control::kForward:
            return "forward";
        case Control::kBackward:
            return "backward";
        case Control::kRight:
            return "right";
        case Control::kLeft:
            return "left";
        case Control::kYawRight:
            return "yaw_right";
        case Control::kYawLeft:
            return "yaw_left";
        case Control::kPitchUp:
            return "pitch_up";
        case Control::kPitchDown:
            return "pitch_down";
    }
    throw std::logic_error("control_name: unknown control");
}

Action action_from_controls(const ControlSet& c) {
    const int forward = axis(c.test(Control::kForward), c.test(Control::kBackward));
    const int right = axis(c.test(Control::kRight), c.test(Control::kLeft));
    const int yaw = axis(c.test(Control::kYawRight), c.test(Control::kYawLeft));
    const int pitch = axis(c.test(Control::kPitchUp), c.test(Control::kPitchDown));
    return {translation_from_axes(forward, right), rotation_from_axes(yaw, pitch)};
}

ControlSet controls_for(const Action& action) {
    const Axes t = translation_axes(action.translation);
    const Axes r = rotation_axes(action.rotation);
    ControlSet c;
    c.set(Control::kForward, t.first > 0);
    c.set(Control::kBackward, t.first < 0);
    c.set(Control::kRight, t.second > 0);
    c.set(Control::kLeft, t.second < 0);
    c.set(Control::kYawRight, r.first > 0);
    c.set(Control::kYawLeft, r.first < 0);
    c.set(Control::kPitchUp, r.second > 0);
    c.set(Control::kPitchDown, r.second < 0);
    return c;
}

CameraState apply_action(const CameraState& state, const Action& action, const ActionStep& step,
                         double fraction) {
    check_finite_non_negative(fraction, "fraction");
    check_finite_non_negative(step.translation_units, "translation step");
    check_finite_non_negative(step.rotation_deg, "rotation step");
    check_finite_non_negative(step.max_pitch_deg, "pitch limit");
    const Axes t = translation_axes(action.translation);
    const Axes r = rotation_axes(action.rotation);

    CameraState next = state;
    const double turn = step.rotation_deg * fraction;
    next.yaw_deg = wrap_degrees(state.yaw_deg + r.first * turn);
    next.pitch_deg =
        std::clamp(state.pitch_deg + r.second * turn, -step.max_pitch_deg, step.max_pitch_deg);

    // Heading in the ground plane: Ry(yaw) applied to +z (forward) and +x (right).
    const CameraState heading{{}, next.yaw_deg, 0.0};
    const Vec3 fwd = camera_forward(heading);
    const Vec3 right = camera_right(heading);
    const double move = step.translation_units * fraction;
    const double f = t.first * move;
    const double s = t.second * move;
    next.position.x += f * fwd.x + s * right.x;
    next.position.z += f * fwd.z + s * right.z;
    return next;
}

Action action_from_motion(const Mat4& c2w_prev, const Mat4& c2w_next) {
    const Mat4 rel = multiply(invert_rigid(c2w_prev), c2w_next);

    int forward = 0;
    int right = 0;
    const double tx = rel[3];
    const double ty = rel[7];
    const double tz = rel[11];
    const double norm = std::sqrt(tx * tx + ty * ty + tz * tz);
    if (norm > kMotionTranslationEpsilon) {
        const double az = std::acos(std::clamp(tz / norm, -1.0, 1.0)) * kRadToDeg;
        const double ax = std::acos(std::clamp(tx / norm, -1.0, 1.0)) * kRadToDeg;
        forward = az < kMotionAxisAngleDeg ? 1 : (az > 180.0 - kMotionAxisAngleDeg ? -1 : 0);
        right = ax < kMotionAxisAngleDeg ? 1 : (ax > 180.0 - kMotionAxisAngleDeg ? -1 : 0);
    }

    // Extrinsic xyz: R = Rz(e2) Ry(e1) Rx(e0), so R[2][0] = -sin(e1), R[2][1] / R[2][2] =
    // tan(e0) (scaled by cos(e1)).
    const double e1 = std::asin(std::clamp(-rel[8], -1.0, 1.0)) * kRadToDeg;
    const double e0 = std::atan2(rel[9], rel[10]) * kRadToDeg;
    const int yaw =
        e1 > kMotionRotationThresholdDeg ? 1 : (e1 < -kMotionRotationThresholdDeg ? -1 : 0);
    const int pitch =
        e0 > kMotionRotationThresholdDeg ? 1 : (e0 < -kMotionRotationThresholdDeg ? -1 : 0);
    return {translation_from_axes(forward, right), rotation_from_axes(yaw, pitch)};
}

std::vector<int> labels_from_poses(std::span<const Mat4> c2w) {
    std::vector<int> labels(c2w.size(), 0);
    for (std::size_t i = 1; i < c2w.size(); ++i) {
        labels[i] = action_from_motion(c2w[i - 1], c2w[i]).label();
    }
    return labels;
}

}  // namespace qvg::input
