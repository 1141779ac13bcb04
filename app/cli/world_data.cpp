#include "world_data.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>

#include <qvg/core/rng.h>
#include <qvg/world/walks.h>

namespace qvg::cli {
namespace {

using input::Action;
using input::Rotation;
using input::Translation;

double uniform(core::Rng& rng, double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
}

// `latents` actions starting at a seeded phase of a longer scripted walk (repeated as needed).
world::ActionList piece(const world::ActionList& walk, core::Rng& rng, int latents) {
    world::ActionList out;
    std::size_t i = rng.below(walk.size());
    while (static_cast<int>(out.size()) < latents) {
        out.push_back(walk[i]);
        i = (i + 1) % walk.size();
    }
    return out;
}

}  // namespace

world::ClipOptions clip_options(int image_size, int frames_per_latent) {
    world::ClipOptions options;
    options.render.width = image_size;
    options.render.height = image_size;
    options.frames_per_latent = frames_per_latent;
    return options;
}

input::CameraState random_start(const world::World& world, core::Rng& rng) {
    // Within 400 m of the spawn, where the landmarks are, facing a multiple of 3 degrees.
    input::CameraState start = world.spawn();
    start.position.x = uniform(rng, -16.0, 16.0);
    start.position.z = uniform(rng, -16.0, 16.0);
    start.yaw_deg = 3.0 * static_cast<double>(rng.below(120));
    start.pitch_deg = 3.0 * (static_cast<double>(rng.below(7)) - 3.0);
    return world.on_ground(start);
}

WalkKind parse_walk_kind(const std::string& name) {
    if (name == "mixed") return WalkKind::kMixed;
    if (name == "random") return WalkKind::kRandom;
    if (name == "back-and-forth") return WalkKind::kBackAndForth;
    if (name == "square") return WalkKind::kSquare;
    if (name == "out-and-back") return WalkKind::kOutAndBack;
    if (name == "forward") return WalkKind::kForward;
    throw std::invalid_argument("unknown walk '" + name +
                                "' (expected mixed, random, back-and-forth, square, "
                                "out-and-back or forward)");
}

world::Clip make_world_clip(const world::World& world, const ClipRequest& request, bool draw) {
    core::Rng rng(request.seed);
    world::ClipOptions options = clip_options(request.image_size, request.frames_per_latent);
    options.draw = draw;
    const input::ActionStep& step = options.step;

    const input::CameraState start = random_start(world, rng);
    WalkKind kind = request.walk;
    if (kind == WalkKind::kMixed) {
        const std::uint64_t r = rng.below(8);
        kind = r < 4   ? WalkKind::kRandom
               : r < 6 ? WalkKind::kBackAndForth
               : r < 7 ? WalkKind::kSquare
                       : WalkKind::kOutAndBack;
    }
    const int n = request.latents;
    world::ActionList actions;
    switch (kind) {
        case WalkKind::kRandom: {
            world::RandomWalkOptions walk;
            walk.latents = n;
            actions = world::random_walk(rng.next(), walk, step);
            break;
        }
        case WalkKind::kBackAndForth: {
            // Out along one translation, then back along its opposite: every frame of the way
            // back shows a place seen on the way out, from the same heading.
            const bool sideways = rng.below(3) == 0;
            const Translation out = sideways ? Translation::kRight : Translation::kForward;
            const Translation back = sideways ? Translation::kLeft : Translation::kBackward;
            const int half = std::max(1, n / 2);
            for (int i = 0; i < n; ++i) {
                actions.push_back(Action{i < half ? out : back, Rotation::kNone});
            }
            break;
        }
        case WalkKind::kSquare:
            actions = piece(
                world::square_loop(4 + static_cast<int>(rng.below(8)), step, rng.below(2) == 0),
                rng, n);
            break;
        case WalkKind::kOutAndBack:
            actions = piece(world::out_and_back(4 + static_cast<int>(rng.below(12)), step), rng, n);
            break;
        case WalkKind::kForward:
        case WalkKind::kMixed:
            actions = world::repeat_action(Action{Translation::kForward, Rotation::kNone}, n);
            break;
    }
    return world::make_clip(world, start, actions, options);
}

std::vector<world::Clip> make_world_clips(const world::World& world, ClipRequest request,
                                          std::uint64_t base_seed, int count, int threads) {
    std::vector<world::Clip> clips(static_cast<std::size_t>(count));
    // Walks first (cheap), then every frame of every clip as its own piece of work: a batch of
    // few long clips keeps all threads busy too.
    for (int i = 0; i < count; ++i) {
        ClipRequest r = request;
        r.seed = core::Rng::mix(base_seed, static_cast<std::uint64_t>(i));
        clips[static_cast<std::size_t>(i)] = make_world_clip(world, r, /*draw=*/false);
    }
    const world::RenderSettings settings =
        clip_options(request.image_size, request.frames_per_latent).render;
    world::check_render_settings(settings);
    const std::size_t frame_bytes =
        static_cast<std::size_t>(settings.width) * static_cast<std::size_t>(settings.height) * 3;
    std::vector<std::pair<int, int>> work;  // (clip, frame)
    for (int i = 0; i < count; ++i) {
        world::Clip& c = clips[static_cast<std::size_t>(i)];
        c.frames.resize(static_cast<std::size_t>(c.frame_count()) * frame_bytes);
        for (int f = 0; f < c.frame_count(); ++f) work.emplace_back(i, f);
    }
    const int workers = std::clamp(threads, 1, std::max(1, static_cast<int>(work.size())));
    std::atomic<std::size_t> next{0};
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(workers));
    auto draw = [&](int worker) {
        try {
            for (std::size_t k = next++; k < work.size(); k = next++) {
                world::Clip& c = clips[static_cast<std::size_t>(work[k].first)];
                const auto f = static_cast<std::size_t>(work[k].second);
                world::render(
                    world, c.frame_poses[f], settings,
                    std::span<std::uint8_t>(c.frames).subspan(f * frame_bytes, frame_bytes));
            }
        } catch (...) {
            errors[static_cast<std::size_t>(worker)] = std::current_exception();
        }
    };
    if (workers == 1) {
        draw(0);
    } else {
        std::vector<std::thread> pool;
        for (int w = 0; w < workers; ++w) pool.emplace_back(draw, w);
        for (auto& t : pool) t.join();
    }
    for (auto& e : errors) {
        if (e) std::rethrow_exception(e);
    }
    return clips;
}

}  // namespace qvg::cli
