#pragma once
// HY-WorldPlay's discrete action vocabulary. One action per latent frame: a translation (W/A/S/D
// and their diagonals) and a rotation (yaw and pitch and their combinations), with the label
// 9 * translation + rotation in 0..80 that the model embeds like a timestep.
//
// Labels can also be read off a pair of poses, following upstream's pose_to_input: the label of
// frame i describes the motion from frame i-1 to frame i.

#include <qvg/input/camera.h>

#include <bitset>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace qvg::input {

// Values are upstream's trans labels.
enum class Translation : std::uint8_t {
    kNone = 0,
    kForward = 1,        // W
    kBackward = 2,       // S
    kRight = 3,          // D
    kLeft = 4,           // A
    kForwardRight = 5,   // W+D
    kForwardLeft = 6,    // W+A
    kBackwardRight = 7,  // S+D
    kBackwardLeft = 8,   // S+A
};

// Values are upstream's rot labels. "Up" turns the view toward -y (camera up).
enum class Rotation : std::uint8_t {
    kNone = 0,
    kYawRight = 1,
    kYawLeft = 2,
    kPitchUp = 3,
    kPitchDown = 4,
    kRightUp = 5,
    kRightDown = 6,
    kLeftUp = 7,
    kLeftDown = 8,
};

inline constexpr int kActionCount = 81;

struct Action {
    Translation translation = Translation::kNone;
    Rotation rotation = Rotation::kNone;

    int label() const { return 9 * static_cast<int>(translation) + static_cast<int>(rotation); }
    // Throws std::out_of_range for a label outside 0..80.
    static Action from_label(int label);

    friend bool operator==(const Action&, const Action&) = default;
};

// The eight held controls of one latent frame: upstream's two one-hot vectors
// (forward, backward, right, left) and (yaw right, yaw left, pitch up, pitch down).
enum class Control : std::uint8_t {
    kForward,
    kBackward,
    kRight,
    kLeft,
    kYawRight,
    kYawLeft,
    kPitchUp,
    kPitchDown,
};
inline constexpr int kControlCount = 8;

// Name used in key-map files ("forward", "yaw_right", ...).
std::string_view control_name(Control control);

class ControlSet {
  public:
    ControlSet() = default;
    ControlSet(std::initializer_list<Control> controls) {
        for (Control c : controls) set(c);
    }
    void set(Control c, bool on = true) { bits_.set(static_cast<std::size_t>(c), on); }
    bool test(Control c) const { return bits_.test(static_cast<std::size_t>(c)); }
    bool empty() const { return bits_.none(); }
    friend bool operator==(const ControlSet&, const ControlSet&) = default;

  private:
    std::bitset<kControlCount> bits_;
};

// Opposite controls held together cancel (W+S is no translation), as they would on a gamepad.
Action action_from_controls(const ControlSet& controls);
// The canonical controls of an action: action_from_controls(controls_for(a)) == a.
ControlSet controls_for(const Action& action);

// How far one action moves the camera in one latent frame (upstream's pose-string presets).
struct ActionStep {
    double translation_units = 0.08;  // along each held axis (W+D moves 0.08 forward and right)
    double rotation_deg = 3.0;        // per held rotation axis
    double max_pitch_deg = 35.0;      // pitch is clamped to +-this (no flips, labels stay exact)
};

// Applies `fraction` of one latent frame's motion (fraction = 1 / frames_per_latent per video
// frame): first the rotation (yaw about the world vertical, pitch clamped), then the translation
// along the new heading in the ground plane, as upstream composes yaw, pitch, forward, right.
// Walking stays level: position.y is left unchanged (a world may set it to follow its terrain).
// Throws std::invalid_argument for a non-finite or negative fraction or step.
CameraState apply_action(const CameraState& state, const Action& action, const ActionStep& step,
                         double fraction = 1.0);

// Upstream's labelling rule (config.json action_labels.pose_to_label_rule). rel =
// inv(c2w_prev) c2w_next; translation t = rel[:3,3] counts when |t| > 1e-4: forward if the angle
// between t and +z is under 60 degrees, backward if over 120, right/left likewise with +x (y is
// ignored). Rotation: extrinsic XYZ Euler angles of rel[:3,:3] (R = Rz(e2) Ry(e1) Rx(e0)); yaw
// right if e1 > 0.05 degrees, left if e1 < -0.05, pitch up if e0 > 0.05, down if e0 < -0.05.
inline constexpr double kMotionTranslationEpsilon = 1e-4;
inline constexpr double kMotionAxisAngleDeg = 60.0;
inline constexpr double kMotionRotationThresholdDeg = 0.05;
Action action_from_motion(const Mat4& c2w_prev, const Mat4& c2w_next);
// Labels of a pose sequence: frame 0 gets 0, frame i the motion from i-1 to i.
std::vector<int> labels_from_poses(std::span<const Mat4> c2w);

}  // namespace qvg::input
