#pragma once
// Clips for training and judging the default world model: a start pose and one action per latent
// frame become frames_per_latent rendered video frames per latent (HY-WorldPlay's 4x temporal
// compression by default), the pose of every frame, and the per-latent action labels.
//
// Latent k covers frames [k * F, (k + 1) * F); frame k * F + j shows the pose after (j + 1) / F
// of latent k's action, so each latent's last frame sits at that latent's pose and the start pose
// itself is not drawn (begin with a no-op action to get a still first latent). The camera walks
// on the ground: after every frame's step it is put back eye_height_m above the terrain.

#include <qvg/input/action.h>
#include <qvg/input/camera.h>
#include <qvg/input/trajectory.h>
#include <qvg/world/renderer.h>
#include <qvg/world/walks.h>
#include <qvg/world/world.h>

#include <cstdint>
#include <span>
#include <vector>

namespace qvg::world {

struct ClipOptions {
    RenderSettings render;  // size, field of view, range
    int frames_per_latent = 4;
    input::ActionStep step;
    bool draw = true;  // false: poses and labels only (fast)
};

struct Clip {
    int width = 0;
    int height = 0;
    int frames_per_latent = 0;
    double fov_deg = 0.0;
    input::ActionStep step;
    input::CameraState start;
    std::vector<std::uint8_t> frames;              // [frames, height, width, 3] RGB8
    std::vector<input::CameraState> frame_poses;   // [frames]
    std::vector<input::CameraState> latent_poses;  // [latents], each latent's last frame's pose
    std::vector<input::Action> actions;            // [latents]
    std::vector<int> labels;                       // [latents], 9 * translation + rotation

    int frame_count() const { return static_cast<int>(frame_poses.size()); }
    int latent_count() const { return static_cast<int>(actions.size()); }
    // One frame's pixels (empty when the clip was made with draw = false).
    std::span<const std::uint8_t> frame(int index) const;
    // The clip as a trajectory file's contents, with the world's seed.
    input::Trajectory trajectory(std::uint64_t seed) const;
};

// Throws std::invalid_argument for frames_per_latent < 1 or bad render settings.
Clip make_clip(const World& world, const input::CameraState& start,
               std::span<const input::Action> actions, const ClipOptions& options);

// Replays a trajectory file in `world` at the file's size, field of view, step and frames per
// latent. The poses it reaches are the file's (checked: throws std::runtime_error naming the
// latent where they part by more than kTrajectoryPoseTolerance, e.g. a file made in another world).
Clip replay(const World& world, const input::Trajectory& trajectory);

}  // namespace qvg::world
