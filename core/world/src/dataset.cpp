#include <qvg/world/dataset.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace qvg::world {

std::span<const std::uint8_t> Clip::frame(int index) const {
    if (index < 0 || index >= frame_count()) {
        throw std::out_of_range("Clip::frame: index " + std::to_string(index) + " outside 0.." +
                                std::to_string(frame_count() - 1));
    }
    const std::size_t bytes = std::size_t(width) * std::size_t(height) * 3;
    if (frames.empty()) return {};
    return std::span<const std::uint8_t>(frames).subspan(std::size_t(index) * bytes, bytes);
}

input::Trajectory Clip::trajectory(std::uint64_t seed) const {
    input::Trajectory t;
    t.seed = seed;
    t.width = width;
    t.height = height;
    t.fov_deg = fov_deg;
    t.frames_per_latent = frames_per_latent;
    t.step = step;
    t.start = start;
    for (int i = 0; i < latent_count(); ++i) {
        t.latents.push_back({actions[std::size_t(i)], latent_poses[std::size_t(i)]});
    }
    return t;
}

Clip make_clip(const World& world, const input::CameraState& start,
               std::span<const input::Action> actions, const ClipOptions& options) {
    if (options.frames_per_latent < 1) {
        throw std::invalid_argument("make_clip: frames_per_latent must be at least 1, got " +
                                    std::to_string(options.frames_per_latent));
    }
    const RenderSettings& rs = options.render;
    Clip clip;
    clip.width = rs.width;
    clip.height = rs.height;
    clip.frames_per_latent = options.frames_per_latent;
    clip.fov_deg = rs.fov_deg;
    clip.step = options.step;
    clip.start = world.on_ground(start);
    const std::size_t frame_bytes = std::size_t(rs.width) * std::size_t(rs.height) * 3;
    const std::size_t frame_total = actions.size() * std::size_t(options.frames_per_latent);
    if (options.draw) check_render_settings(rs);  // before the big allocation
    clip.frames.resize(options.draw ? frame_total * frame_bytes : 0);
    clip.frame_poses.reserve(frame_total);

    const double fraction = 1.0 / options.frames_per_latent;
    input::CameraState pose = clip.start;
    for (const input::Action& action : actions) {
        for (int j = 0; j < options.frames_per_latent; ++j) {
            pose = world.on_ground(input::apply_action(pose, action, options.step, fraction));
            if (options.draw) {
                const std::size_t f = clip.frame_poses.size();
                render(world, pose, rs,
                       std::span<std::uint8_t>(clip.frames).subspan(f * frame_bytes, frame_bytes));
            }
            clip.frame_poses.push_back(pose);
        }
        clip.latent_poses.push_back(pose);
        clip.actions.push_back(action);
        clip.labels.push_back(action.label());
    }
    return clip;
}

Clip replay(const World& world, const input::Trajectory& trajectory) {
    ClipOptions options;
    options.render.width = trajectory.width;
    options.render.height = trajectory.height;
    options.render.fov_deg = trajectory.fov_deg;
    options.frames_per_latent = trajectory.frames_per_latent;
    options.step = trajectory.step;
    std::vector<input::Action> actions;
    for (const input::TrajectoryLatent& l : trajectory.latents) actions.push_back(l.action);
    Clip clip = make_clip(world, trajectory.start, actions, options);
    for (std::size_t i = 0; i < trajectory.latents.size(); ++i) {
        const input::CameraState& a = clip.latent_poses[i];
        const input::CameraState& b = trajectory.latents[i].pose;
        const double diff =
            std::max({std::abs(a.position.x - b.position.x), std::abs(a.position.y - b.position.y),
                      std::abs(a.position.z - b.position.z), std::abs(a.yaw_deg - b.yaw_deg),
                      std::abs(a.pitch_deg - b.pitch_deg)});
        if (diff > input::kTrajectoryPoseTolerance) {
            throw std::runtime_error("replay: latent " + std::to_string(i) +
                                     " reaches a pose that differs from the trajectory's by " +
                                     std::to_string(diff) +
                                     " (made in another world or with other settings?)");
        }
    }
    return clip;
}

}  // namespace qvg::world
