#pragma once
// The scripted trajectories `qvg eval` rolls the world model out along, as clips of the built-in
// world. Every clip starts with `context` still latents (no-op action, label 0) at a seeded start
// pose near the spawn: the ground truth the model is primed with. Then come the generated
// latents:
//   straight        W held                                   (frames / T latents)
//   turn            yaw right in place, 3 degrees a latent   (frames / T latents)
//   random          a seeded random walk with momentum       (frames / T latents)
//   back-and-forth  W for half the latents, then S back over the same ground (frames / T)
//   return          W for frames / T latents, seen: ground truth after the still context, then
//                   S back over the same ground for frames / T latents, generated. Every place
//                   of the way back is in the history as ground truth, so the rollout can stay
//                   on it, and what a cache keeps of the history decides how well it does.
//   square          world::square_loop(loop_side): one whole loop, back at the start pose
//   out-and-back    world::out_and_back(loop_side): one whole walk, back at the start pose
// The loops take as long as their geometry needs (every quarter turn is 30 latents at the default
// step), whatever `frames` says: square 4 * (loop_side + 30) latents, out-and-back
// 2 * (loop_side + 60). Generated latents are padded with no-op latents to whole chunks.

#include <cstdint>
#include <string>
#include <vector>

#include <qvg/world/dataset.h>
#include <qvg/world/world.h>

namespace qvg::cli {

// straight, turn, square, out-and-back, random (back-and-forth and return on request).
std::vector<std::string> default_eval_trajectories();

// Throws core::Error for a name that is not a trajectory.
void check_eval_trajectory(const std::string& name);
bool is_loop_trajectory(const std::string& name);

struct EvalTrajectoryRequest {
    std::string name;
    std::uint64_t seed = 0;  // start pose and random walk
    int context_latents = 1;
    int frames = 256;  // generated frames of the open trajectories, a multiple of T * chunk
    int loop_side = 4;
    int image_size = 64;
    int frames_per_latent = 4;
    int chunk_latents = 1;
};

struct EvalTrajectory {
    std::string name;
    world::Clip clip;  // context latents first, then the generated ones
    int context_latents = 0;
    int generated_latents = 0;

    int context_frames() const { return context_latents * clip.frames_per_latent; }
    int generated_frames() const { return generated_latents * clip.frames_per_latent; }
};

EvalTrajectory make_eval_trajectory(const world::World& world,
                                    const EvalTrajectoryRequest& request);

}  // namespace qvg::cli
