#include "generate_world.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <system_error>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <qvg/world/image_metrics.h>

#include "json_file.h"
#include "progress.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/world_model.h"
#include "qvg/core/world_model_session.h"
#include "world_data.h"

#ifdef QVG_HAVE_FFMPEG
#include <qvg/render/mp4_writer.h>
#endif

namespace qvg::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kVideoFps = 16;  // the world's clips: 4 frames per 250 ms latent

#ifdef QVG_HAVE_FFMPEG
// Nearest-neighbour enlargement of one RGB frame (for the MP4).
std::vector<uint8_t> enlarge(const uint8_t* rgb, int64_t size, int scale) {
    const int64_t out = size * scale;
    std::vector<uint8_t> big(static_cast<size_t>(out * out * 3));
    for (int64_t y = 0; y < out; ++y) {
        for (int64_t x = 0; x < out; ++x) {
            const uint8_t* src = rgb + ((y / scale) * size + x / scale) * 3;
            std::copy_n(src, 3, big.data() + (y * out + x) * 3);
        }
    }
    return big;
}
#endif

void check(const WorldGenerateOptions& o) {
    QVG_CHECK(o.latent_frames > 0, "--latent-frames {} must be positive", o.latent_frames);
    QVG_CHECK(o.context > 0, "--context {} must be at least 1 latent", o.context);
    QVG_CHECK(o.scale >= 1 && o.scale <= 16, "--scale {} must be in 1..16", o.scale);
    try {
        parse_walk_kind(o.walk);
    } catch (const std::invalid_argument& e) {
        core::fail("--walk: {}", e.what());
    }
    QVG_CHECK(!o.output.empty() || !o.report.empty(), "nothing to write: give -o or --report");
#ifndef QVG_HAVE_FFMPEG
    QVG_CHECK(o.output.empty(),
              "-o {}: this build has no MP4 support (FFmpeg was not found when it was configured); "
              "use --report",
              o.output);
#endif
    for (const std::string* p : {&o.output, &o.report}) {
        if (p->empty()) continue;
        std::error_code ec;
        const fs::path parent = fs::absolute(*p).parent_path();
        QVG_CHECK(fs::is_directory(parent, ec), "{}: directory {} does not exist", *p,
                  parent.string());
    }
}

}  // namespace

bool is_world_model_file(const std::string& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec) || fs::path(path).extension() != ".safetensors") {
        return false;
    }
    try {
        const auto file = core::SafetensorsFile::open(path);
        return file->metadata().count(core::kWorldModelMetadataKey) > 0;
    } catch (const std::exception&) {
        return false;  // not readable as safetensors: the Wan loader gives the message
    }
}

int run_generate_world(const WorldGenerateOptions& o) {
    check(o);
    if (o.threads > 0) at::set_num_threads(o.threads);
    const at::Device device = core::resolve_device(o.device);
    const auto load_start = std::chrono::steady_clock::now();
    const auto file = core::SafetensorsFile::open(o.model);
    world::WorldConfig wc;
    wc.seed = static_cast<uint64_t>(file->metadata_int("qvg.world_seed", 1));
    wc.map_size = static_cast<int>(file->metadata_int("qvg.map_size", 1024));
    const int64_t trained_clip = file->metadata_int("qvg.clip_latents", 0);
    const core::WorldModel model = core::WorldModel::load(o.model, device);
    const core::WorldModelConfig& c = model.config();
    const int64_t k = c.chunk_latents, t = c.frames_per_latent, s = c.image_size;
    QVG_CHECK(o.context % k == 0 && o.latent_frames % k == 0,
              "--context ({}) and --latent-frames ({}) must be multiples of the model's block ({} "
              "latents)",
              o.context, o.latent_frames, k);

    core::CachePolicy policy;
    try {
        CacheOptions cache = o.cache;
        cache.seed = o.seed;
        cache.history_bound = trained_clip > 1 ? trained_clip - 1 : 0;
        policy = make_cache_policy(cache, c.dit.head_dim(), c.tokens_per_latent());
    } catch (const core::Error& e) {
        core::fail("--cache {}: {}", o.cache.codec, e.what());
    }
    policy.hold_bf16 = true;
    if (policy.window_frames != o.cache.window_frames ||
        policy.sink_frames != o.cache.sink_frames || policy.span_frames != o.cache.span_frames) {
        std::cerr << fmt::format(
            "generate: history held to at most {} latent frames (sink {}, window {}, spans of "
            "{}{}): the model was trained on clips of {}\n",
            trained_clip - 1, policy.sink_frames, policy.window_frames, policy.span_frames,
            policy.codec.compresses() ? fmt::format(", {} centroids", policy.codec.centroids) : "",
            trained_clip);
    }

    const world::World world(wc);
    ClipRequest request;
    request.seed = o.seed;
    request.latents = static_cast<int>(o.context + o.latent_frames);
    request.image_size = static_cast<int>(s);
    request.frames_per_latent = static_cast<int>(t);
    request.walk = parse_walk_kind(o.walk);
    const world::Clip clip = make_world_clip(world, request);

    core::KVCache cache(core::world_cache_shape(model), policy);
    core::WorldModelSession session(model, cache, {.seed = o.seed});
    const size_t frame_bytes = static_cast<size_t>(s * s * 3);
    const int64_t context_frames = o.context * t;
    session.prime(std::span(clip.frames.data(), static_cast<size_t>(context_frames) * frame_bytes),
                  context_frames, std::span(clip.labels.data(), static_cast<size_t>(o.context)));
    const double load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start)
            .count();

#ifdef QVG_HAVE_FFMPEG
    std::unique_ptr<render::Mp4Writer> writer;
    if (!o.output.empty()) {
        writer = std::make_unique<render::Mp4Writer>(o.output, static_cast<int>(s * o.scale),
                                                     static_cast<int>(s * o.scale), kVideoFps);
    }
#endif
    std::cerr << fmt::format(
        "generate: world model {} ({}x{}, {} frames per latent) on {}, {} latent frames along a "
        "{} walk of world {} after {} of ground truth, {} cache\n",
        o.model, s, s, t, core::device_name(device), o.latent_frames, o.walk, wc.seed, o.context,
        policy.codec.describe());
    Progress progress("generate", o.latent_frames / k);
    nlohmann::json blocks = nlohmann::json::array();
    std::vector<double> psnr, copy_psnr;
    const uint8_t* last_context = clip.frames.data() + (context_frames - 1) * frame_bytes;
    double run_ms = 0;
    for (int64_t latent = o.context; latent < o.context + o.latent_frames; latent += k) {
        const core::WorldFrames f =
            session.step(std::span(clip.labels.data() + latent, static_cast<size_t>(k)));
        run_ms += session.last_step_ms();
        const core::WorldStepTiming& timing = session.last_timing();
        for (int64_t i = 0; i < f.count; ++i) {
            const uint8_t* gen = f.rgb.data() + i * static_cast<int64_t>(frame_bytes);
            const uint8_t* truth = clip.frames.data() + (latent * t + i) * frame_bytes;
            psnr.push_back(world::psnr({gen, frame_bytes}, {truth, frame_bytes}));
            copy_psnr.push_back(world::psnr({last_context, frame_bytes}, {truth, frame_bytes}));
#ifdef QVG_HAVE_FFMPEG
            if (writer) {
                const std::vector<uint8_t> big = enlarge(gen, s, o.scale);
                const int size = static_cast<int>(s * o.scale);
                writer->write({big.data(), size, size, size * 3});
            }
#endif
        }
        const core::CacheStats st = cache.stats();
        blocks.push_back({{"latent", latent},
                          {"ms", session.last_step_ms()},
                          {"dit_ms", timing.dit_ms},
                          {"cache_ms", timing.cache_ms},
                          {"decode_ms", timing.decode_ms},
                          {"kv_bytes", st.bytes},
                          {"kv_frames", st.frames}});
        progress.update(
            (latent - o.context) / k + 1,
            fmt::format("latent {}: {:.0f} ms, KV {:.2f} MiB", latent, session.last_step_ms(),
                        static_cast<double>(st.bytes) / 1048576.0));
    }
#ifdef QVG_HAVE_FFMPEG
    if (writer) writer->close();
#endif
    progress.finish();

    auto mean = [](const std::vector<double>& v) {
        double sum = 0;
        for (double x : v) sum += x;
        return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
    };
    const auto frames = static_cast<int64_t>(psnr.size());
    const double fps = static_cast<double>(frames) / (run_ms / 1000.0);
    const core::CacheStats st = cache.stats();
    if (!o.report.empty()) {
        const nlohmann::json report = {{"model", o.model},
                                       {"kind", "world model"},
                                       {"model_config", nlohmann::json::parse(c.to_json())},
                                       {"world_seed", wc.seed},
                                       {"map_size", wc.map_size},
                                       {"walk", o.walk},
                                       {"seed", o.seed},
                                       {"context_latents", o.context},
                                       {"latent_frames", o.latent_frames},
                                       {"video_frames", frames},
                                       {"video_fps", kVideoFps},
                                       {"device", device.str()},
                                       {"device_name", core::device_name(device)},
                                       {"cache_policy", policy_json(policy)},
                                       {"kv", cache_json(st)},
                                       {"load_ms", load_ms},
                                       {"total_ms", run_ms},
                                       {"fps", fps},
                                       {"mean_psnr", mean(psnr)},
                                       {"mean_copy_psnr", mean(copy_psnr)},
                                       {"psnr", psnr},
                                       {"blocks", blocks},
                                       {"output", o.output}};
        write_json_file(o.report, report, "--report");
    }
    std::cout << fmt::format(
        "generated {} video frames ({} latent frames) in {:.2f} s: {:.1f} frames/s on {}; PSNR "
        "against the ground truth {:.2f} dB (copying the last context frame: {:.2f} dB); KV "
        "cache {:.2f} MiB ({:.2f} MiB as BF16)\n",
        frames, o.latent_frames, run_ms / 1000.0, fps, core::device_name(device), mean(psnr),
        mean(copy_psnr), static_cast<double>(st.bytes) / 1048576.0,
        static_cast<double>(st.bf16_bytes) / 1048576.0);
    if (!o.output.empty()) std::cout << "wrote " << o.output << "\n";
    if (!o.report.empty()) std::cout << "wrote " << o.report << "\n";
    return 0;
}

}  // namespace qvg::cli
