// qvg generate: a Self-Forcing video from a text embedding, block by block, with the KV cache of
// the chosen policy; each block is decoded by the streaming VAE and appended to the MP4 as soon
// as it exists, so the file grows while the run goes on. --report records where the time and the
// cache bytes went; --dump writes the latents for comparison with a reference run.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "cache_options.h"
#include "commands.h"
#include "default_model.h"
#include "generate_inputs.h"
#include "generate_world.h"
#include "json_file.h"
#include "progress.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/flow_noise.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/self_forcing.h"
#include "qvg/core/wan_dit.h"
#include "qvg/core/wan_vae.h"

#ifdef QVG_HAVE_FFMPEG
#include <qvg/render/mp4_writer.h>
#endif

namespace qvg::cli {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kFramesPerBlock = 3;
constexpr int64_t kPixelsPerLatent = 8;  // Wan2.1 VAE spatial factor
constexpr int64_t kVideoFps = 16;

struct GenerateOptions {
    std::string model;
    std::string vae;
    std::string text_embedding;
    int64_t latent_frames = 0;
    int64_t height = 0;  // pixels
    int64_t width = 0;   // pixels
    uint64_t seed = 0;
    CacheOptions cache;  // its seed is --seed
    std::string dtype = "bf16";
    std::string device = "auto";
    std::string output;
    std::string report;
    std::string noise;
    std::string dump;
    // World models only.
    std::string walk = "mixed";
    int64_t context = 1;
    int scale = 4;
    int threads = 0;
};

struct BlockReport {
    int64_t block = 0;
    int64_t dit_calls = 0;
    double dit_ms = 0;
    double cache_ms = 0;
    double vae_ms = 0;     // streaming decode and RGB conversion
    double encode_ms = 0;  // H.264 encoding and writing
    int64_t video_frames = 0;
    int64_t kv_bytes = 0;  // all layers, after the block
    int64_t kv_frames = 0;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void check_writable(const std::string& path, const char* what) {
    if (path.empty()) return;
    const fs::path parent = fs::absolute(path).parent_path();
    std::error_code ec;
    QVG_CHECK(fs::is_directory(parent, ec), "{} {}: directory {} does not exist", what, path,
              parent.string());
}

// Everything that can be checked before loading anything, so mistakes fail in milliseconds.
void check_options(const GenerateOptions& o) {
    QVG_CHECK(!o.text_embedding.empty(),
              "--text-embedding is required for a Self-Forcing checkpoint ({}); world models "
              "need none",
              o.model);
    QVG_CHECK(o.height != 0 && o.width != 0 && o.latent_frames != 0,
              "--latent-frames, --height and --width are required for a Self-Forcing checkpoint "
              "({})",
              o.model);
    QVG_CHECK(o.latent_frames > 0 && o.latent_frames % kFramesPerBlock == 0,
              "--latent-frames {} is not a positive multiple of {} (the model generates blocks of "
              "{} latent frames)",
              o.latent_frames, kFramesPerBlock, kFramesPerBlock);
    QVG_CHECK(o.height > 0 && o.width > 0 && o.height % 16 == 0 && o.width % 16 == 0,
              "--height {} and --width {} must be positive multiples of 16 (8x VAE upsampling of "
              "2x2 latent patches)",
              o.height, o.width);
    const CacheOptions& c = o.cache;
    QVG_CHECK(c.span_frames >= 1, "--span {} must be at least 1 frame", c.span_frames);
    QVG_CHECK(c.lag_frames >= 0 && c.window_frames >= 0 && c.sink_frames >= 0,
              "--lag, --window and --sink must be >= 0 (0 window = unlimited), found {}, {}, {}",
              c.lag_frames, c.window_frames, c.sink_frames);
    try {
        core::parse_codec_method(c.codec);
    } catch (const core::Error& e) {
        core::fail("--cache: {}", e.what());
    }
    if (!o.output.empty()) {
#ifndef QVG_HAVE_FFMPEG
        core::fail(
            "-o {}: this build has no MP4 support (FFmpeg was not found when it was configured); "
            "use --dump to write latents instead",
            o.output);
#endif
        QVG_CHECK(!o.vae.empty(), "-o {} needs --vae: without a VAE there are no pixels to encode",
                  o.output);
    }
    QVG_CHECK(!o.output.empty() || !o.dump.empty() || !o.report.empty(),
              "nothing to write: give -o (with --vae), --dump or --report");
    check_writable(o.output, "-o");
    check_writable(o.report, "--report");
    check_writable(o.dump, "--dump");
}

nlohmann::json config_json(const core::WanConfig& c) {
    return {{"dim", c.dim},
            {"ffn_dim", c.ffn_dim},
            {"num_heads", c.num_heads},
            {"num_layers", c.num_layers},
            {"in_dim", c.in_dim},
            {"out_dim", c.out_dim},
            {"text_len", c.text_len},
            {"text_dim", c.text_dim},
            {"freq_dim", c.freq_dim},
            {"eps", c.eps},
            {"patch_size", c.patch_size},
            {"qk_norm", c.qk_norm},
            {"cross_attn_norm", c.cross_attn_norm}};
}

#ifdef QVG_HAVE_FFMPEG
// rgb: uint8 [T, H, W, 3] on the CPU, contiguous.
void write_frames(render::Mp4Writer& writer, const at::Tensor& rgb) {
    for (int64_t i = 0; i < rgb.size(0); ++i) {
        const at::Tensor frame = rgb[i];
        writer.write({frame.data_ptr<uint8_t>(), static_cast<int>(rgb.size(2)),
                      static_cast<int>(rgb.size(1)), static_cast<int>(rgb.size(2) * 3)});
    }
}
#endif

int run_generate(const GenerateOptions& o) {
    check_options(o);
    if (o.threads > 0) at::set_num_threads(o.threads);
    c10::InferenceMode guard;
    const c10::Device device = core::resolve_device(o.device);
    const at::ScalarType dtype = o.dtype == "fp32" ? at::kFloat : at::kBFloat16;
    const int64_t latent_h = o.height / kPixelsPerLatent, latent_w = o.width / kPixelsPerLatent;
    const int64_t blocks = o.latent_frames / kFramesPerBlock;

    const auto load_start = std::chrono::steady_clock::now();
    ModelFiles files = load_model_files(o.model);
    const core::WanConfig config = files.config;
    QVG_CHECK(latent_h % config.patch_size[1] == 0 && latent_w % config.patch_size[2] == 0,
              "latents of {}x{} do not divide into the model's {}x{} patches", latent_h, latent_w,
              config.patch_size[1], config.patch_size[2]);
    const int64_t tokens_per_frame =
        (latent_h / config.patch_size[1]) * (latent_w / config.patch_size[2]);
    core::CachePolicy policy;
    try {
        CacheOptions cache = o.cache;
        cache.seed = o.seed;
        policy = make_cache_policy(cache, config.head_dim(), tokens_per_frame);
    } catch (const core::Error& e) {
        core::fail("--cache {}: {}", o.cache.codec, e.what());
    }
    const at::Tensor text_in = load_text_embedding(o.text_embedding, config);
    std::unique_ptr<core::NoiseSource> noise;
    const core::FlowSchedule schedule;
    const auto steps = static_cast<int64_t>(schedule.self_forcing_steps().size());
    if (!o.noise.empty()) {
        noise = std::make_unique<core::ReplayedNoise>(
            load_replayed_noise(o.noise, o.latent_frames, config.in_dim, latent_h, latent_w,
                                kFramesPerBlock, steps - 1),
            kFramesPerBlock);
    } else {
        noise = std::make_unique<core::SeededNoise>(o.seed);
    }
    const core::WanDiT model(config, files.weights, device, dtype);
    files.weights.clear();  // the model holds its own copies on the device
    QVG_CHECK(o.latent_frames <= model.rope().max_positions(),
              "--latent-frames {}: the RoPE table covers {} latent frames", o.latent_frames,
              model.rope().max_positions());
    const core::TextContext text = model.encode_text(text_in.to(device));

    std::optional<core::WanVaeDecoder> vae;
    std::optional<core::WanVaeStream> stream;
    if (!o.vae.empty()) {
        vae.emplace(load_vae(o.vae, config.out_dim, device, dtype));
        QVG_CHECK(vae->config().spatial_factor() == kPixelsPerLatent,
                  "{}: the VAE upsamples {}x, expected {}x", o.vae, vae->config().spatial_factor(),
                  kPixelsPerLatent);
        stream.emplace(vae->start_stream());
    }
    const int64_t video_frames =
        vae ? vae->config().output_frames(o.latent_frames) : 1 + 4 * (o.latent_frames - 1);

#ifdef QVG_HAVE_FFMPEG
    std::unique_ptr<render::Mp4Writer> writer;
    if (!o.output.empty()) {
        writer = std::make_unique<render::Mp4Writer>(o.output, static_cast<int>(o.width),
                                                     static_cast<int>(o.height),
                                                     static_cast<int>(kVideoFps));
    }
#endif

    core::KVCache history(
        {config.num_layers, 1, config.num_heads, config.head_dim(), tokens_per_frame}, policy);
    core::SelfForcingOptions session_options;
    session_options.frames_per_block = kFramesPerBlock;
    session_options.record_steps = !o.dump.empty();
    core::SelfForcingSession session(model, text, history, std::move(noise),
                                     {1, latent_h, latent_w}, session_options, schedule);
    core::synchronize(device);
    const double load_ms = ms_since(load_start);

    std::cerr << fmt::format(
        "generate: {} latent frames ({} blocks) at {}x{} on {} ({}), {} cache ({})\n",
        o.latent_frames, blocks, o.width, o.height, core::device_name(device), o.dtype,
        o.cache.codec, policy.codec.describe());
    Progress progress("generate", blocks);
    std::vector<BlockReport> block_reports;
    std::vector<at::Tensor> latents;  // per block [1, 3, C, h, w] on the CPU
    const auto run_start = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < blocks; ++b) {
        // The last block's K/V would never be read, so its clean pass is skipped.
        const core::CleanPass clean =
            b + 1 == blocks ? core::CleanPass::kSkip : core::CleanPass::kRun;
        const at::Tensor x0 = session.generate_block(clean);
        BlockReport r;
        r.block = b;
        const core::BlockTiming& timing = session.timings().back();
        r.dit_calls = timing.dit_calls;
        r.dit_ms = timing.dit_ms;
        r.cache_ms = timing.cache_ms;
        if (!o.dump.empty()) latents.push_back(x0.to(at::kCPU));
        if (stream) {
            const auto t0 = std::chrono::steady_clock::now();
            const at::Tensor rgb =
                core::to_rgb8(stream->decode_chunk(x0)).to(at::kCPU).contiguous();
            r.vae_ms = ms_since(t0);
            r.video_frames = rgb.size(0);
#ifdef QVG_HAVE_FFMPEG
            if (writer) {
                const auto t1 = std::chrono::steady_clock::now();
                write_frames(*writer, rgb);
                r.encode_ms = ms_since(t1);
            }
#endif
        }
        const core::CacheStats st = history.stats();
        r.kv_bytes = st.bytes;
        r.kv_frames = st.frames;
        block_reports.push_back(r);
        progress.update(b + 1, fmt::format("block {}: DiT {:.0f} ms, VAE {:.0f} ms, KV {:.2f} MiB",
                                           b, r.dit_ms, r.vae_ms + r.encode_ms,
                                           static_cast<double>(r.kv_bytes) / 1048576.0));
    }
#ifdef QVG_HAVE_FFMPEG
    if (writer) writer->close();
#endif
    const double run_ms = ms_since(run_start);
    progress.finish();

    if (!o.dump.empty()) {
        std::vector<std::pair<std::string, at::Tensor>> tensors = {{"output", at::cat(latents, 1)}};
        for (const core::StepRecord& s : session.steps()) {
            tensors.emplace_back(fmt::format("x0_b{}_s{}", s.block, s.step), s.x0);
        }
        core::save_safetensors(o.dump, tensors,
                               {{"seed", std::to_string(o.seed)}, {"cache", o.cache.codec}});
    }

    const core::CacheStats st = history.stats();
    const double run_s = run_ms / 1000.0;
    if (!o.report.empty()) {
        nlohmann::json jb = nlohmann::json::array();
        for (const BlockReport& r : block_reports) {
            jb.push_back({{"block", r.block},
                          {"dit_calls", r.dit_calls},
                          {"dit_ms", r.dit_ms},
                          {"cache_ms", r.cache_ms},
                          {"vae_ms", r.vae_ms},
                          {"encode_ms", r.encode_ms},
                          {"video_frames", r.video_frames},
                          {"kv_bytes", r.kv_bytes},
                          {"kv_frames", r.kv_frames}});
        }
        const nlohmann::json report = {
            {"model", o.model},
            {"weights", files.weights_path},
            {"config_source", files.config_source},
            {"config", config_json(config)},
            {"vae", o.vae},
            {"seed", o.seed},
            {"noise", o.noise.empty() ? "seeded" : o.noise},
            {"device", device.str()},
            {"device_name", core::device_name(device)},
            {"dtype", o.dtype},
            {"latent_frames", o.latent_frames},
            {"height", o.height},
            {"width", o.width},
            {"blocks_count", blocks},
            {"timesteps", session.timesteps()},
            {"cache_policy", policy_json(policy)},
            // Without a synchronising timing mode, cache_ms on CUDA counts the time to queue the
            // cache work, not to run it; the DiT time absorbs the rest.
            {"cache_ms_exact", device.is_cpu()},
            {"blocks", jb},
            {"kv", cache_json(st)},
            {"kv_bytes", st.bytes},
            {"kv_bf16_bytes", st.bf16_bytes},
            {"kv_ratio", st.ratio()},
            {"load_ms", load_ms},
            {"total_ms", run_ms},
            {"video_frames", video_frames},
            {"video_fps", kVideoFps},
            {"fps", static_cast<double>(video_frames) / run_s},
            {"latent_fps", static_cast<double>(o.latent_frames) / run_s},
            {"output", o.output},
            {"dump", o.dump}};
        write_json_file(o.report, report, "--report");
    }

    std::cout << fmt::format(
        "generated {} latent frames ({} video frames) in {:.2f} s: {:.2f} frames/s; KV cache "
        "{:.2f} MiB, {:.2f} MiB as BF16 (ratio {:.2f})\n",
        o.latent_frames, video_frames, run_s, static_cast<double>(video_frames) / run_s,
        static_cast<double>(st.bytes) / 1048576.0, static_cast<double>(st.bf16_bytes) / 1048576.0,
        st.ratio());
    if (!o.output.empty()) std::cout << "wrote " << o.output << "\n";
    if (!o.dump.empty()) std::cout << "wrote " << o.dump << "\n";
    if (!o.report.empty()) std::cout << "wrote " << o.report << "\n";
    return 0;
}

int run_world(const GenerateOptions& o) {
    QVG_CHECK(o.text_embedding.empty() && o.vae.empty() && o.noise.empty() && o.dump.empty() &&
                  o.height == 0 && o.width == 0,
              "{} is a world model: --text-embedding, --vae, --noise, --dump, --height and --width "
              "are for Self-Forcing checkpoints",
              o.model);
    WorldGenerateOptions w;
    w.model = o.model;
    w.device = o.device;
    if (o.latent_frames > 0) w.latent_frames = o.latent_frames;
    w.context = o.context;
    w.walk = o.walk;
    w.seed = o.seed;
    w.cache = o.cache;
    w.scale = o.scale;
    w.output = o.output;
    w.report = o.report;
    w.threads = o.threads;
    return run_generate_world(w);
}

const Registrar kRegister([](CLI::App& app) {
    auto o = std::make_shared<GenerateOptions>();
    CLI::App* sub = app.add_subcommand(
        "generate", "Generate a video with Self-Forcing and a (quantized) KV cache");
    sub->add_option("--model", o->model,
                    "a world model (.safetensors from qvg train), or a Self-Forcing model "
                    "directory (config.json + weights) or weights file; default: the built-in "
                    "world model ($QVG_WORLD_MODEL, <program dir>/../share/qvg/world/, "
                    "<source dir>/assets/world/)");
    sub->add_option("--vae", o->vae, "Wan2.1 VAE weights (.pth or .safetensors) for -o");
    sub->add_option("--text-embedding", o->text_embedding,
                    "Self-Forcing: safetensors with 'text_embeds' [L, D] or [1, L, D] (or its "
                    "only tensor)");
    sub->add_option("--latent-frames", o->latent_frames,
                    "latent frames to generate (Self-Forcing: a multiple of 3; world model: "
                    "default 32)")
        ->check(CLI::PositiveNumber);
    sub->add_option("--height", o->height, "Self-Forcing: video height in pixels (multiple of 16)");
    sub->add_option("--width", o->width, "Self-Forcing: video width in pixels (multiple of 16)");
    sub->add_option("--walk", o->walk,
                    "world model: the walk (mixed, random, back-and-forth, square, out-and-back "
                    "or forward)");
    sub->add_option("--context", o->context,
                    "world model: ground-truth latent frames before generation")
        ->check(CLI::PositiveNumber);
    sub->add_option("--scale", o->scale, "world model: MP4 pixels per model pixel")
        ->check(CLI::Range(1, 16));
    sub->add_option("--threads", o->threads, "intra-op threads (0 = LibTorch's default)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", o->seed, "noise and codec seed");
    CacheOptions& c = o->cache;
    sub->add_option("--cache", c.codec, "KV cache: bf16, qvg, rtn, kivi, quarot or fp8");
    sub->add_option("--bits", c.bits, "codec bits (2 or 4)");
    sub->add_option("--group", c.group, "channels per FP8 scale");
    sub->add_option("--stages", c.stages, "PRQ stages (qvg)");
    sub->add_option("--centroids", c.centroids, "k-means centroids per stage (qvg)");
    sub->add_option("--iters", c.iterations, "k-means iterations (qvg)");
    sub->add_flag("--asymmetric", c.asymmetric,
                  "scale and zero point per group (rtn, qvg, quarot)");
    sub->add_flag("--channel-keys", c.channel_keys,
                  "keys' last residual per channel, in groups of G tokens (qvg, rtn)");
    sub->add_flag("--clip", c.clip_search,
                  "search each group's range for the least error (rtn, qvg, kivi, quarot)");
    sub->add_option("--codebook-bits", c.codebook_bits,
                    "bits per codebook value: 16 (BF16), 8 (FP8: twice the centroids in the same "
                    "bytes) or 4 (INT4 per centroid) (qvg)")
        ->check(CLI::IsMember({16, 8, 4}));
    sub->add_option("--span", c.span_frames, "latent frames per quantized span");
    sub->add_option("--lag", c.lag_frames, "newest latent frames kept BF16 beyond whole spans");
    sub->add_option("--window", c.window_frames,
                    "latent frames kept after the sink (0 = unlimited)");
    sub->add_option("--sink", c.sink_frames, "first latent frames kept BF16 forever");
    sub->add_option("--dtype", o->dtype, "bf16 or fp32")->check(CLI::IsMember({"bf16", "fp32"}));
    sub->add_option("--device", o->device, "auto, cpu or cuda");
#ifdef QVG_HAVE_FFMPEG
    sub->add_option("-o,--output", o->output, "H.264 MP4 to write (Self-Forcing: needs --vae)");
#else
    sub->add_option("-o,--output", o->output, "unavailable: this build has no MP4 support");
#endif
    sub->add_option("--report", o->report, "JSON report of timings, cache bytes and errors");
    sub->add_option("--noise", o->noise,
                    "replay 'noise' and 'renoise_b{b}_s{j}' from this safetensors file");
    sub->add_option("--dump", o->dump, "write 'output' and per-step 'x0_b{b}_s{j}' latents here");
    on_selected(sub, [o] {
        try {
            if (o->model.empty()) {
                const auto found = app::default_model_path();
                QVG_CHECK(found.has_value(),
                          "no --model given and no built-in world model found ($QVG_WORLD_MODEL, "
                          "<program dir>/../share/qvg/world/world_model.safetensors, <source "
                          "dir>/assets/world/world_model.safetensors)");
                o->model = found->string();
            }
            if (is_world_model_file(o->model)) return run_world(*o);
            return run_generate(*o);
        } catch (const c10::Error& e) {
            // LibTorch's own messages carry a C++ backtrace; the first line is the message.
            const std::string what = e.what_without_backtrace();
            core::fail("{}", what.substr(0, what.find('\n')));
        }
    });
});

}  // namespace
}  // namespace qvg::cli
