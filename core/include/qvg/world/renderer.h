#pragma once
// A CPU heightfield ("voxel space") renderer for World. Each image column casts one ray over the
// map and walks it front to back with growing steps, filling the column from the bottom up with a
// y-buffer: a sample is drawn only where it rises above everything nearer. Yaw turns the rays,
// pitch shifts the horizon (a shear, exact at pitch 0 and close enough within +-35 degrees), and
// the eye height comes from the pose's altitude. Distance fades into the sky colour.
//
// The pose is snapped to 1 micrometre and 1e-7 degrees before rendering, so that a trajectory
// that returns to its start up to floating-point rounding draws the identical image.

#include <qvg/input/camera.h>
#include <qvg/world/world.h>

#include <cstdint>
#include <span>
#include <vector>

namespace qvg::world {

struct RenderSettings {
    int width = 64;
    int height = 64;
    double fov_deg = 90.0;  // horizontal, as input::intrinsics_for
    double near_m = 0.5;
    double far_m = 700.0;
    double fog_start_m = 120.0;  // fog grows from here to far_m
};

// An RGB8 image, rows top to bottom, pixels left to right: rgb[(y * width + x) * 3 + c].
struct Image {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> rgb;
};

// Throws std::invalid_argument naming the bad setting.
void check_render_settings(const RenderSettings& settings);

// Draws the view from `pose` into out (width * height * 3 bytes). Throws std::invalid_argument
// for a bad size, field of view or range, or an output span of the wrong size.
void render(const World& world, const input::CameraState& pose, const RenderSettings& settings,
            std::span<std::uint8_t> out);
Image render(const World& world, const input::CameraState& pose, const RenderSettings& settings);

}  // namespace qvg::world
