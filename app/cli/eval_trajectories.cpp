#include "eval_trajectories.h"

#include <algorithm>

#include <qvg/world/walks.h>

#include "qvg/core/error.h"
#include "qvg/core/rng.h"
#include "world_data.h"

namespace qvg::cli {
namespace {

using input::Action;
using input::Rotation;
using input::Translation;

const std::vector<std::string> kAll = {"straight", "turn",           "square", "out-and-back",
                                       "random",   "back-and-forth", "return"};

}  // namespace

std::vector<std::string> default_eval_trajectories() {
    return {"straight", "turn", "square", "out-and-back", "random"};
}

void check_eval_trajectory(const std::string& name) {
    QVG_CHECK(std::find(kAll.begin(), kAll.end(), name) != kAll.end(),
              "unknown trajectory '{}' (expected {})", name, fmt::join(kAll, ", "));
}

bool is_loop_trajectory(const std::string& name) {
    return name == "square" || name == "out-and-back";
}

EvalTrajectory make_eval_trajectory(const world::World& world, const EvalTrajectoryRequest& r) {
    check_eval_trajectory(r.name);
    const int per_chunk = r.frames_per_latent * r.chunk_latents;
    QVG_CHECK(r.frames > 0 && r.frames % per_chunk == 0,
              "{} frames are not a positive whole number of chunks of {} frames", r.frames,
              per_chunk);
    QVG_CHECK(r.context_latents > 0 && r.context_latents % r.chunk_latents == 0,
              "{} context latents are not a positive whole number of chunks of {} latents",
              r.context_latents, r.chunk_latents);
    QVG_CHECK(r.loop_side >= 1, "the loop side must be at least 1 latent, found {}", r.loop_side);
    core::Rng rng(r.seed);
    const world::ClipOptions options = clip_options(r.image_size, r.frames_per_latent);
    const input::ActionStep& step = options.step;
    const input::CameraState start = random_start(world, rng);

    const int open_latents = r.frames / r.frames_per_latent;
    world::ActionList walk;
    if (r.name == "straight") {
        walk = world::repeat_action(Action{Translation::kForward, Rotation::kNone}, open_latents);
    } else if (r.name == "turn") {
        walk = world::repeat_action(Action{Translation::kNone, Rotation::kYawRight}, open_latents);
    } else if (r.name == "random") {
        world::RandomWalkOptions random;
        random.latents = open_latents;
        walk = world::random_walk(rng.next(), random, step);
    } else if (r.name == "back-and-forth") {
        const int half = std::max(1, open_latents / 2);
        for (int i = 0; i < open_latents; ++i) {
            walk.push_back(
                Action{i < half ? Translation::kForward : Translation::kBackward, Rotation::kNone});
        }
    } else if (r.name == "return") {
        walk = world::repeat_action(Action{Translation::kBackward, Rotation::kNone}, open_latents);
    } else if (r.name == "square") {
        walk = world::square_loop(r.loop_side, step);
    } else {
        walk = world::out_and_back(r.loop_side, step);
    }
    while (walk.size() % static_cast<size_t>(r.chunk_latents) != 0) walk.push_back(Action{});

    world::ActionList actions(static_cast<size_t>(r.context_latents), Action{});
    // "return": the way out is ground truth the model is primed with, as long as the way back.
    const int seen = r.name == "return" ? open_latents : 0;
    actions.insert(actions.end(), static_cast<size_t>(seen),
                   Action{Translation::kForward, Rotation::kNone});
    actions.insert(actions.end(), walk.begin(), walk.end());
    EvalTrajectory t;
    t.name = r.name;
    t.clip = world::make_clip(world, start, actions, options);
    t.context_latents = r.context_latents + seen;
    t.generated_latents = static_cast<int>(walk.size());
    return t;
}

}  // namespace qvg::cli
