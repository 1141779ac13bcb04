#pragma once
// Trajectory files: everything needed to replay a session exactly. The world's seed and the
// render settings, the start pose, and per latent frame the action taken and the pose reached at
// the end of that latent frame (with its c2w, as upstream's pose JSON carries extrinsics).
//
//   {"format": "qvg-trajectory", "version": 1, "seed": 7, "width": 128, "height": 128,
//    "fov_deg": 90.0, "frames_per_latent": 4,
//    "step": {"translation_units": 0.08, "rotation_deg": 3.0, "max_pitch_deg": 35.0},
//    "start": {"position": [x, y, z], "yaw_deg": 0.0, "pitch_deg": 0.0},
//    "latents": [{"action": 9, "pose": {...as start...}, "c2w": [16 numbers, row-major]}, ...]}
//
// Doubles are written with enough digits to read back bit for bit.

#include <qvg/input/action.h>
#include <qvg/input/camera.h>
#include <qvg/input/file_error.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace qvg::input {

struct TrajectoryLatent {
    Action action;
    CameraState pose;  // at the end of this latent frame
};

struct Trajectory {
    std::uint64_t seed = 0;
    int width = 0;
    int height = 0;
    double fov_deg = 90.0;  // horizontal
    int frames_per_latent = 4;
    ActionStep step;
    CameraState start;
    std::vector<TrajectoryLatent> latents;
};

// c2w within this of camera_to_world(pose) (entry-wise) passes validation.
inline constexpr double kTrajectoryPoseTolerance = 1e-6;

std::string trajectory_to_json(const Trajectory& trajectory);
void save_trajectory(const std::filesystem::path& path, const Trajectory& trajectory);
// Throw InputFileError naming the file (or `source_name`), the field and the problem: wrong
// format or version, missing or mistyped members, sizes or field of view out of range, labels
// outside 0..80, non-finite numbers, a c2w that is not rigid or does not match its pose.
Trajectory parse_trajectory(std::string_view json_text, const std::string& source_name);
Trajectory load_trajectory(const std::filesystem::path& path);

}  // namespace qvg::input
