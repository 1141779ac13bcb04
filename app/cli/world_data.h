#pragma once
// Training and preview clips of the built-in world for `qvg train` and `qvg world-sample`:
// seeded walks (random walks with momentum, back-and-forth walks that revisit every place they
// pass, and pieces of square loops and out-and-back walks) from seeded start poses near the
// landmarks, rendered at the model's size. Clip i of step s depends only on (seed, s, i), so a
// resumed run sees exactly the data an uninterrupted one would.

#include <cstdint>
#include <string>
#include <vector>

#include <qvg/core/rng.h>
#include <qvg/world/dataset.h>
#include <qvg/world/world.h>

namespace qvg::cli {

enum class WalkKind { kMixed, kRandom, kBackAndForth, kSquare, kOutAndBack, kForward };

// "mixed", "random", "back-and-forth", "square", "out-and-back", "forward". Throws
// std::invalid_argument for other names.
WalkKind parse_walk_kind(const std::string& name);

struct ClipRequest {
    std::uint64_t seed = 0;
    int latents = 16;
    int image_size = 64;
    int frames_per_latent = 4;
    WalkKind walk = WalkKind::kMixed;
};

// draw = false: poses and labels only.
world::Clip make_world_clip(const world::World& world, const ClipRequest& request,
                            bool draw = true);

// Clip options for square frames of `image_size` pixels, `frames_per_latent` frames per latent
// and the default action step.
world::ClipOptions clip_options(int image_size, int frames_per_latent);

// A seeded start pose on the ground within 400 m of the spawn (where the landmarks are), facing
// a multiple of 3 degrees, pitched by a multiple of 3 degrees within +-9.
input::CameraState random_start(const world::World& world, core::Rng& rng);

// Clips for seeds base_seed + 0 .. count-1 (mixed with Rng::mix), the same as make_world_clip
// gives for each, drawn on `threads` threads (one frame at a time, so few clips also spread).
std::vector<world::Clip> make_world_clips(const world::World& world, ClipRequest request,
                                          std::uint64_t base_seed, int count, int threads);

}  // namespace qvg::cli
