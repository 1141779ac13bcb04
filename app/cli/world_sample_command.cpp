// qvg world-sample: rolls a trained world model out along a seeded walk of the procedural world
// from ground-truth context frames, and writes what it made beside the ground truth: one PNG per
// frame (generated | ground truth), a contact sheet, and summary.json with per-frame PSNR, the
// copy-the-last-context-frame baseline and frames per second.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <qvg/world/image_metrics.h>

#include "commands.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/world_model.h"
#include "qvg/core/world_model_session.h"
#include "world_data.h"
#include "world_png.h"

namespace qvg::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct SampleOptions {
    std::string model;
    std::string out;
    std::string device = "cpu";
    std::string walk = "mixed";
    std::string cache = "bf16";
    int latents = 16;   // generated latent frames
    int context = 1;    // ground-truth latent frames first
    int64_t steps = 0;  // 0 = the model's
    int64_t window = 0;
    uint64_t seed = 0;        // the walk
    uint64_t noise_seed = 0;  // the sampler
    uint64_t world_seed = 1;
    int map_size = 1024;
    int threads = 0;
    bool png = true;
};

int run_sample(const SampleOptions& o) {
    if (o.threads > 0) at::set_num_threads(o.threads);
    const at::Device device = core::resolve_device(o.device);
    const core::WorldModel model = core::WorldModel::load(o.model, device);
    const core::WorldModelConfig& c = model.config();
    const int64_t k = c.chunk_latents, t = c.frames_per_latent, s = c.image_size;
    QVG_CHECK(o.context > 0 && o.context % k == 0 && o.latents > 0 && o.latents % k == 0,
              "--context ({}) and --latents ({}) must be positive multiples of the block ({} "
              "latents)",
              o.context, o.latents, k);

    world::WorldConfig wc;
    wc.seed = o.world_seed;
    wc.map_size = o.map_size;
    const world::World world(wc);
    ClipRequest request;
    request.seed = o.seed;
    request.latents = o.context + o.latents;
    request.image_size = static_cast<int>(s);
    request.frames_per_latent = static_cast<int>(t);
    request.walk = parse_walk_kind(o.walk);
    const world::Clip clip = make_world_clip(world, request);

    core::CachePolicy policy;
    policy.codec = core::default_codec_config(core::parse_codec_method(o.cache));
    policy.window_frames = o.window;
    policy.hold_bf16 = true;
    core::KVCache cache(core::world_cache_shape(model), policy);
    core::WorldModelSession session(model, cache, {.steps = o.steps, .seed = o.noise_seed});

    const size_t frame_bytes = static_cast<size_t>(s * s * 3);
    const int64_t context_frames = o.context * t;
    session.prime(std::span(clip.frames.data(), static_cast<size_t>(context_frames) * frame_bytes),
                  context_frames, std::span(clip.labels.data(), static_cast<size_t>(o.context)));
    std::vector<uint8_t> generated;
    double total_ms = 0;
    for (int64_t latent = o.context; latent < o.context + o.latents; latent += k) {
        core::WorldFrames f =
            session.step(std::span(clip.labels.data() + latent, static_cast<size_t>(k)));
        total_ms += session.last_step_ms();
        generated.insert(generated.end(), f.rgb.begin(), f.rgb.end());
    }
    const int64_t frames = static_cast<int64_t>(o.latents) * t;
    const double fps = static_cast<double>(frames) / (total_ms / 1000.0);

    fs::create_directories(o.out);
    const uint8_t* last_context = clip.frames.data() + (context_frames - 1) * frame_bytes;
    json per_frame = json::array();
    double sum = 0, sum_copy = 0;
    for (int64_t f = 0; f < frames; ++f) {
        const uint8_t* gen = generated.data() + f * static_cast<int64_t>(frame_bytes);
        const uint8_t* truth = clip.frames.data() + (context_frames + f) * frame_bytes;
        const double p = world::psnr({gen, frame_bytes}, {truth, frame_bytes});
        const double pc = world::psnr({last_context, frame_bytes}, {truth, frame_bytes});
        sum += p;
        sum_copy += pc;
        per_frame.push_back({{"frame", f}, {"psnr", p}, {"copy_psnr", pc}});
        if (o.png) {
            // Generated on the left, ground truth on the right.
            std::vector<uint8_t> pair(frame_bytes * 2);
            for (int64_t y = 0; y < s; ++y) {
                std::copy_n(gen + y * s * 3, s * 3, pair.data() + y * s * 6);
                std::copy_n(truth + y * s * 3, s * 3, pair.data() + y * s * 6 + s * 3);
            }
            write_png(fs::path(o.out) / fmt::format("frame_{:04d}.png", f), pair,
                      static_cast<int>(2 * s), static_cast<int>(s));
        }
    }
    if (o.png) {
        // Contact sheet: one column per latent (its last frame), generated above ground truth.
        const int64_t cols = o.latents;
        std::vector<uint8_t> sheet(static_cast<size_t>(cols * s * 2 * s * 3));
        for (int64_t col = 0; col < cols; ++col) {
            const int64_t f = col * t + t - 1;
            const uint8_t* rows[2] = {generated.data() + f * static_cast<int64_t>(frame_bytes),
                                      clip.frames.data() + (context_frames + f) * frame_bytes};
            for (int r = 0; r < 2; ++r) {
                for (int64_t y = 0; y < s; ++y) {
                    std::copy_n(rows[r] + y * s * 3, s * 3,
                                sheet.data() + ((r * s + y) * cols * s + col * s) * 3);
                }
            }
        }
        write_png(fs::path(o.out) / "sheet.png", sheet, static_cast<int>(cols * s),
                  static_cast<int>(2 * s));
    }
    json summary = {{"model", o.model},
                    {"walk", o.walk},
                    {"seed", o.seed},
                    {"noise_seed", o.noise_seed},
                    {"cache", o.cache},
                    {"context_latents", o.context},
                    {"generated_latents", o.latents},
                    {"frames", frames},
                    {"steps", session.sigmas().size()},
                    {"device", core::device_name(device)},
                    {"fps", fps},
                    {"ms_per_block", total_ms / static_cast<double>(o.latents / k)},
                    {"mean_psnr", sum / static_cast<double>(frames)},
                    {"mean_copy_psnr", sum_copy / static_cast<double>(frames)},
                    {"frames_detail", per_frame}};
    std::ofstream(fs::path(o.out) / "summary.json") << summary.dump(2) << "\n";
    std::cout << fmt::format(
                     "{} frames ({} latents) in {:.0f} ms: {:.1f} frames/s on {}\n"
                     "mean PSNR {:.2f} dB (copying the last context frame: {:.2f} dB)\n"
                     "wrote {}",
                     frames, o.latents, total_ms, fps, core::device_name(device),
                     sum / static_cast<double>(frames), sum_copy / static_cast<double>(frames),
                     o.out)
              << std::endl;
    return 0;
}

const Registrar kRegister([](CLI::App& app) {
    auto o = std::make_shared<SampleOptions>();
    CLI::App* sub = app.add_subcommand(
        "world-sample", "roll a world model out along a walk and write frames beside the truth");
    sub->add_option("--model", o->model, "world model safetensors (from qvg train)")->required();
    sub->add_option("--out", o->out, "output directory")->required();
    sub->add_option("--device", o->device, "auto, cpu or cuda");
    sub->add_option("--walk", o->walk,
                    "mixed, random, back-and-forth, square, out-and-back or forward");
    sub->add_option("--cache", o->cache, "KV cache codec: bf16, fp8, rtn, qvg, kivi or quarot");
    sub->add_option("--window", o->window, "latent frames kept by the cache (0 = all)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--latents", o->latents, "latent frames to generate")
        ->check(CLI::PositiveNumber);
    sub->add_option("--context", o->context, "ground-truth latent frames first")
        ->check(CLI::PositiveNumber);
    sub->add_option("--steps", o->steps, "denoising steps per block (0 = the model's)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", o->seed, "walk seed");
    sub->add_option("--noise-seed", o->noise_seed, "sampler noise seed");
    sub->add_option("--world-seed", o->world_seed, "procedural world seed");
    sub->add_option("--map-size", o->map_size, "world map size in metres");
    sub->add_option("--threads", o->threads, "intra-op threads (0 = default)");
    sub->add_flag("!--no-png", o->png, "skip the PNG files");
    on_selected(sub, [o] { return run_sample(*o); });
});

}  // namespace
}  // namespace qvg::cli
