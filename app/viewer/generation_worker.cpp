#include "generation_worker.h"

#include "latent_preview.h"

#include <qvg/core/device.h>
#include <qvg/core/flow_noise.h>
#include <qvg/core/kv_cache.h>
#include <qvg/core/self_forcing.h>
#include <qvg/core/world_model_session.h>
#include <qvg/input/action.h>
#include <qvg/render/recorder.h>
#include <qvg/world/renderer.h>
#include <qvg/world/world.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>

namespace qvg::app {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kHistoryPoints = 240;  // plot length: chunks

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

template <typename T>
void push_history(std::vector<T>& h, T value) {
    h.push_back(value);
    if (h.size() > kHistoryPoints) h.erase(h.begin());
}

// What the host can still give, where the device allocator reports nothing (CPU).
std::int64_t host_available_bytes() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    std::int64_t kib = 0;
    std::string unit;
    while (meminfo >> key >> kib >> unit) {
        if (key == "MemAvailable:") return kib * 1024;
    }
    return 0;
}

// The most frames whose history fits in `budget` bytes over all layers.
std::int64_t frames_that_fit(const core::KVCache& cache, std::int64_t budget) {
    const std::int64_t layers = cache.shape().num_layers;
    const auto bytes = [&](std::int64_t f) { return cache.projected_layer_bytes(f) * layers; };
    if (budget <= 0 || bytes(1) > budget) return 0;
    std::int64_t lo = 1;
    std::int64_t hi = 2;
    while (hi < (std::int64_t{1} << 40) && bytes(hi) <= budget) {
        lo = hi;
        hi *= 2;
    }
    while (hi - lo > 1) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        (bytes(mid) <= budget ? lo : hi) = mid;
    }
    return lo;
}

std::string action_text(const input::Action& a) {
    static constexpr std::array<const char*, 9> kMove = {"",
                                                         "forward (W)",
                                                         "back (S)",
                                                         "right (D)",
                                                         "left (A)",
                                                         "forward-right (W+D)",
                                                         "forward-left (W+A)",
                                                         "back-right (S+D)",
                                                         "back-left (S+A)"};
    static constexpr std::array<const char*, 9> kTurn = {
        "",           "yaw right",    "yaw left",  "look up",    "look down",
        "right + up", "right + down", "left + up", "left + down"};
    const std::string move = kMove[static_cast<std::size_t>(a.translation)];
    const std::string turn = kTurn[static_cast<std::size_t>(a.rotation)];
    std::string text = move.empty() && turn.empty() ? "none"
                       : move.empty()               ? turn
                       : turn.empty()               ? move
                                                    : move + ", " + turn;
    return text + "  [label " + std::to_string(a.label()) + "]";
}

std::string pose_text(const input::CameraState& pose, const world::World* w) {
    char buf[160];
    if (w != nullptr) {
        std::snprintf(buf, sizeof buf, "x %.1f m  z %.1f m  altitude %.1f m  yaw %.0f  pitch %.0f",
                      w->map_x_m(pose), w->map_z_m(pose), w->altitude_m(pose), pose.yaw_deg,
                      pose.pitch_deg);
    } else {
        std::snprintf(buf, sizeof buf, "yaw %.0f  pitch %.0f", pose.yaw_deg, pose.pitch_deg);
    }
    return buf;
}

render::OverlayRoleError role_error(const core::RoleErrorStats& s) {
    return {s.last_stage_rel_error, s.last_rel_error, s.is_bound};
}

void copy_frame(const at::Tensor& rgb8, RgbFrame& out) {  // [H, W, 3] uint8
    const at::Tensor c = rgb8.contiguous();
    out.height = static_cast<int>(c.size(0));
    out.width = static_cast<int>(c.size(1));
    out.rgb.assign(c.data_ptr<std::uint8_t>(), c.data_ptr<std::uint8_t>() + c.numel());
}

// Throws when the policy's codec cannot split the model's heads into its groups (found at once
// rather than when the first span is compressed).
void check_cache_fits(const LoadedModel& model, const core::CachePolicy& policy) {
    const core::WanConfig& mc = dit_config(model);
    core::KVCache probe({mc.num_layers, 1, mc.num_heads, mc.head_dim(), 1}, policy);
    const core::CodecConfig& codec = probe.policy().codec;
    if (codec.compresses() && mc.head_dim() % codec.group != 0) {
        throw std::invalid_argument("group size " + std::to_string(codec.group) +
                                    " does not divide the head size " +
                                    std::to_string(mc.head_dim()));
    }
}

}  // namespace

// Everything the generation thread owns.
struct GenerationWorker::Session {
    WorkerOptions options;
    std::shared_ptr<const LoadedModel> model;
    std::unique_ptr<core::KVCache> cache;
    std::unique_ptr<core::SelfForcingSession> sampler;
    std::unique_ptr<core::WorldModelSession> world_sampler;  // instead of sampler: a world model
    std::optional<core::WanVaeStream> vae_stream;
    std::unique_ptr<core::KVCache> projection_bf16;  // for "frames that fit" (no data)
    std::unique_ptr<core::KVCache> projection_codec;
    std::unique_ptr<world::World> world;
    world::RenderSettings render;
    input::ActionStep step;
    input::CameraState pose;
    at::Tensor last_preview;  // [H, W, 3] uint8 of the previous latent, for in-between frames
    std::int64_t frame_index = 0;
    std::uint64_t last_input_sequence = 0;
    std::size_t replay_position = 0;
    std::shared_ptr<render::Recorder> recorder;
    render::OverlayStats stats;
    Clock::time_point next_deadline = Clock::now();

    bool running() const { return sampler != nullptr || world_sampler != nullptr; }
    // The procedural world to show: the one a world model was trained on, else the seed's.
    world::WorldConfig wanted_world() const {
        if (model && model->world_model) {
            return {.seed = model->world_seed, .map_size = model->world_map_size};
        }
        return {.seed = options.seed};
    }
};

GenerationWorker::GenerationWorker(std::shared_ptr<const LoadedModel> model, WorkerOptions options,
                                   std::function<void()> wakeup)
    : wakeup_(std::move(wakeup)), session_(std::make_unique<Session>()) {
    paused_ = options.paused;
    pending_.model = std::move(model);
    pending_.replay = options.replay;
    has_pending_ = true;
    session_->options = std::move(options);
    thread_ = std::thread([this] { run(); });
}

GenerationWorker::~GenerationWorker() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void GenerationWorker::set_model(std::shared_ptr<const LoadedModel> model,
                                 std::optional<CacheSettings> cache) {
    std::lock_guard lock(mutex_);
    pending_.model = std::move(model);
    if (cache) pending_.cache = std::move(cache);
    has_pending_ = true;
    cv_.notify_all();
}

void GenerationWorker::set_paused(bool paused) {
    std::lock_guard lock(mutex_);
    paused_ = paused;
    cv_.notify_all();
}

void GenerationWorker::step() {
    std::lock_guard lock(mutex_);
    ++steps_requested_;
    cv_.notify_all();
}

void GenerationWorker::reset() {
    std::lock_guard lock(mutex_);
    pending_.reset = true;
    has_pending_ = true;
    status_.finished = false;
    cv_.notify_all();
}

void GenerationWorker::set_seed(std::uint64_t seed) {
    std::lock_guard lock(mutex_);
    pending_.seed = seed;
    has_pending_ = true;
    cv_.notify_all();
}

void GenerationWorker::set_stages(int stages) {
    std::lock_guard lock(mutex_);
    pending_.stages = stages;
    has_pending_ = true;
    cv_.notify_all();
}

void GenerationWorker::set_cache(const CacheSettings& cache) {
    std::lock_guard lock(mutex_);
    pending_.cache = cache;
    has_pending_ = true;
    cv_.notify_all();
}

void GenerationWorker::set_key_map(const input::KeyMap& map) {
    std::lock_guard lock(mutex_);
    pending_.key_map = map;
    has_pending_ = true;
    cv_.notify_all();
}

void GenerationWorker::set_recorder(std::shared_ptr<render::Recorder> recorder) {
    std::lock_guard lock(mutex_);
    pending_.recorder = std::move(recorder);
    pending_.recorder_changed = true;
    has_pending_ = true;
    cv_.notify_all();
}

void GenerationWorker::set_replay(std::optional<input::Trajectory> trajectory) {
    std::lock_guard lock(mutex_);
    pending_.replay = std::move(trajectory);
    has_pending_ = true;
    status_.finished = false;
    cv_.notify_all();
}

input::Trajectory GenerationWorker::trajectory() const {
    std::lock_guard lock(mutex_);
    return trajectory_;
}

WorkerStatus GenerationWorker::status() const {
    std::lock_guard lock(mutex_);
    return status_;
}

void GenerationWorker::post_message(const std::string& text, bool is_error) {
    {
        std::lock_guard lock(mutex_);
        status_.message = text;
        status_.message_is_error = is_error;
        ++status_.message_serial;
    }
    if (wakeup_) wakeup_();
}

bool GenerationWorker::wait_for_work(Commands& commands, bool& stepping) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] {
        const bool can_run = session_->running() && !status_.finished;
        return stop_ || has_pending_ || (can_run && (!paused_ || steps_requested_ > 0));
    });
    if (stop_) return false;
    if (has_pending_) {
        commands = std::move(pending_);
        pending_ = Commands{};
        has_pending_ = false;
    }
    stepping = false;
    if (paused_ && steps_requested_ > 0 && !status_.finished) {
        --steps_requested_;
        stepping = true;
    }
    return true;
}

void GenerationWorker::run() {
    c10::InferenceMode guard;
    Session& s = *session_;
    for (;;) {
        Commands commands;
        bool stepping = false;
        if (!wait_for_work(commands, stepping)) return;
        apply(commands);
        bool runnable = false;
        {
            std::lock_guard lock(mutex_);
            runnable = s.running() && !status_.finished && (!paused_ || stepping) && !has_pending_;
            if (stepping && !runnable) ++steps_requested_;  // keep the step for after the command
        }
        if (!runnable) continue;
        try {
            generate_block();
        } catch (const std::exception& e) {
            // Nothing was committed for the failed block: pause so the message stays readable.
            {
                std::lock_guard lock(mutex_);
                paused_ = true;
            }
            post_message(std::string("generation stopped: ") + e.what(), true);
        }
    }
}

void GenerationWorker::apply(Commands& c) {
    Session& s = *session_;
    bool restart = c.reset;
    if (c.recorder_changed) s.recorder = std::move(c.recorder);
    if (c.key_map) s.options.key_map = *c.key_map;
    if (c.replay) {
        s.options.replay = *c.replay;
        if (s.options.replay) {
            const input::Trajectory& t = *s.options.replay;
            s.options.seed = t.seed;
            s.options.reference_width = t.width;
            s.options.reference_height = t.height;
            s.options.fov_deg = t.fov_deg;
            s.options.frames_per_latent = t.frames_per_latent;
        }
        restart = true;
    }
    if (c.seed) {
        s.options.seed = *c.seed;
        restart = true;
    }
    if (c.model) {
        s.model = std::move(c.model);
        restart = true;
    }
    const world::WorldConfig wanted = s.wanted_world();
    if (s.world == nullptr || s.world->config().seed != wanted.seed ||
        s.world->config().map_size != wanted.map_size) {
        try {
            s.world = std::make_unique<world::World>(wanted);
        } catch (const std::exception& e) {
            s.world.reset();
            post_message(std::string("the procedural world could not be generated: ") + e.what(),
                         true);
        }
    }
    if (c.cache) {
        // Build the new cache before dropping the old one: a bad setting leaves the stream as is.
        try {
            const core::CachePolicy policy = cache_policy(*c.cache, s.options.seed);
            if (s.model) check_cache_fits(*s.model, policy);
            s.options.cache = *c.cache;
            restart = true;
        } catch (const std::exception& e) {
            post_message(std::string("cache settings not applied: ") + e.what(), true);
        }
    }
    if (c.stages && !restart && s.cache) {
        try {
            s.cache->set_stages(*c.stages);
            s.options.cache.stages = *c.stages;
            s.projection_codec->set_stages(*c.stages);
            post_message("PRQ stages: " + std::to_string(*c.stages), false);
        } catch (const std::exception& e) {
            post_message(std::string("stages not changed: ") + e.what(), true);
        }
    } else if (c.stages) {
        s.options.cache.stages = *c.stages;
    }
    if (!restart || s.model == nullptr) return;

    // A new stream: cache, sampler, decoder state, world pose, trajectory.
    s.world_sampler.reset();
    s.sampler.reset();
    s.cache.reset();
    s.vae_stream.reset();
    s.last_preview = at::Tensor();
    s.frame_index = 0;
    s.replay_position = 0;
    const core::WorldModel* world_model = s.model->world_model.get();
    if (world_model != nullptr) {
        s.options.frames_per_latent = static_cast<int>(world_model->config().frames_per_latent);
    }
    try {
        const core::CacheShape shape = cache_shape(*s.model);
        core::CachePolicy policy = cache_policy(s.options.cache, s.options.seed);
        // A world model attends well only to histories as long as those it was trained on.
        if (world_model != nullptr && s.model->trained_clip_latents > 1 &&
            core::bound_history(policy, s.model->trained_clip_latents - 1)) {
            post_message("history held to at most " +
                             std::to_string(s.model->trained_clip_latents - 1) +
                             " latent frames (sink " + std::to_string(policy.sink_frames) +
                             ", window " + std::to_string(policy.window_frames) + ", spans of " +
                             std::to_string(policy.span_frames) +
                             "): the world model was trained on clips of " +
                             std::to_string(s.model->trained_clip_latents),
                         false);
        }
        check_cache_fits(*s.model, policy);
        s.cache = std::make_unique<core::KVCache>(shape, policy);
        core::CachePolicy unbounded = policy;
        unbounded.window_frames = 0;
        s.projection_codec = std::make_unique<core::KVCache>(shape, unbounded);
        unbounded.codec = core::default_codec_config(core::CodecMethod::kBf16);
        s.projection_bf16 = std::make_unique<core::KVCache>(shape, unbounded);
        if (world_model == nullptr) {
            core::SelfForcingOptions sampling;
            sampling.contiguous_positions = true;  // endless play with a sink + window
            s.sampler = std::make_unique<core::SelfForcingSession>(
                *s.model->dit, s.model->text, *s.cache,
                std::make_unique<core::SeededNoise>(s.options.seed), s.model->geometry, sampling);
            if (s.model->vae) s.vae_stream.emplace(s.model->vae->start_stream());
        }
    } catch (const std::exception& e) {
        s.sampler.reset();
        s.cache.reset();
        post_message(std::string("the model could not start: ") + e.what(), true);
    }
    s.render = world::RenderSettings{};
    s.render.width = s.options.reference_width;
    s.render.height = s.options.reference_height;
    s.render.fov_deg = s.options.fov_deg;
    if (s.options.replay) {
        s.step = s.options.replay->step;
        s.pose = s.world ? s.world->on_ground(s.options.replay->start) : s.options.replay->start;
    } else {
        s.step = input::ActionStep{};
        s.pose = s.world ? s.world->spawn() : input::CameraState{};
    }
    if (world_model != nullptr && s.cache) {
        try {
            start_world_model(s);
        } catch (const std::exception& e) {
            s.world_sampler.reset();
            post_message(std::string("the world model could not start: ") + e.what(), true);
        }
    }
    s.stats = render::OverlayStats{};
    {
        std::lock_guard lock(mutex_);
        trajectory_ = input::Trajectory{};
        trajectory_.seed = s.options.seed;
        trajectory_.width = s.render.width;
        trajectory_.height = s.render.height;
        trajectory_.fov_deg = s.render.fov_deg;
        trajectory_.frames_per_latent = s.options.frames_per_latent;
        trajectory_.step = s.step;
        trajectory_.start = s.pose;
        status_.has_model = s.running();
        status_.finished = false;
    }
    if (s.running()) {
        post_message("running " + s.model->label + ", cache " + cache_spec(s.options.cache) +
                         ", seed " + std::to_string(s.options.seed),
                     false);
    }
}

void GenerationWorker::start_world_model(Session& s) {
    const core::WorldModel& wm = *s.model->world_model;
    const core::WorldModelConfig& c = wm.config();
    s.world_sampler = std::make_unique<core::WorldModelSession>(
        wm, *s.cache, core::WorldSamplingOptions{.seed = s.options.seed});
    if (s.world == nullptr) {
        throw std::runtime_error("its ground-truth context needs the procedural world");
    }
    world::RenderSettings rs;  // as `qvg train` renders its clips
    rs.width = static_cast<int>(c.image_size);
    rs.height = static_cast<int>(c.image_size);
    const std::int64_t frames = c.chunk_latents * c.frames_per_latent;
    const std::size_t frame_bytes = static_cast<std::size_t>(rs.width * rs.height * 3);
    std::vector<std::uint8_t> context(frame_bytes * static_cast<std::size_t>(frames));
    world::render(*s.world, s.pose, rs, std::span(context.data(), frame_bytes));
    for (std::int64_t i = 1; i < frames; ++i) {
        std::copy_n(context.begin(), frame_bytes,
                    context.begin() + static_cast<std::ptrdiff_t>(frame_bytes) * i);
    }
    const std::vector<int> labels(static_cast<std::size_t>(c.chunk_latents), 0);
    s.world_sampler->prime(context, frames, labels);
}

void GenerationWorker::generate_block() {
    Session& s = *session_;
    const int fpl = std::max(1, s.options.frames_per_latent);

    // The actions of this block's latents: the replayed file's, or the newest input for all.
    const InputSample in = input_.take();
    const bool input_changed = in.sequence != s.last_input_sequence;
    s.last_input_sequence = in.sequence;
    const core::WorldModel* world_model = s.model->world_model.get();
    // SelfForcingOptions::frames_per_block's default, or the world model's block.
    const std::int64_t latents_per_block =
        world_model != nullptr ? world_model->config().chunk_latents : 3;
    std::vector<input::Action> actions;
    for (std::int64_t k = 0; k < latents_per_block; ++k) {
        if (s.options.replay) {
            const auto& lat = s.options.replay->latents;
            actions.push_back(s.replay_position + static_cast<std::size_t>(k) < lat.size()
                                  ? lat[s.replay_position + static_cast<std::size_t>(k)].action
                                  : input::Action{});
        } else {
            actions.push_back(input::action_from_input(s.options.key_map, in.state));
        }
    }

    const auto t0 = Clock::now();
    std::vector<at::Tensor> model_frames;  // [H, W, 3] uint8 each
    std::int64_t f = latents_per_block;
    core::BlockTiming timing;
    std::optional<core::WorldStepTiming> world_timing;  // a world model decodes its own frames
    at::Tensor latents;
    if (world_model != nullptr) {
        std::vector<int> labels;
        for (const input::Action& a : actions) labels.push_back(a.label());
        const core::WorldFrames out = s.world_sampler->step(labels);
        world_timing = s.world_sampler->last_timing();
        const at::Tensor video = at::from_blob(const_cast<std::uint8_t*>(out.rgb.data()),
                                               {out.count, out.height, out.width, 3}, at::kByte)
                                     .clone();
        for (std::int64_t i = 0; i < out.count; ++i) model_frames.push_back(video[i]);
    } else {
        latents = s.sampler->generate_block();  // [1, F, C, H, W]
        timing = s.sampler->timings().back();
        f = latents.size(1);
    }
    const auto t1 = Clock::now();

    // Decode: fpl video frames per latent frame (a world model's frames are decoded already).
    if (s.vae_stream) {
        const at::Tensor video = core::to_rgb8(s.vae_stream->decode_chunk(latents)).cpu();
        const std::int64_t want = f * fpl;
        for (std::int64_t i = 0; i < want; ++i) {
            // The first chunk yields fewer frames (the causal VAE's first latent is one frame).
            const std::int64_t src = std::max<std::int64_t>(0, video.size(0) - want + i);
            model_frames.push_back(video[src]);
        }
    } else if (world_model == nullptr) {
        const at::Tensor preview = preview_latents(latents, kPreviewScale);  // [F, H, W, 3]
        for (std::int64_t k = 0; k < f; ++k) {
            const at::Tensor cur = preview[k].to(at::kFloat);
            const at::Tensor prev = s.last_preview.defined() ? s.last_preview.to(at::kFloat) : cur;
            for (int j = 0; j < fpl; ++j) {
                const double w = static_cast<double>(j + 1) / fpl;
                model_frames.push_back(
                    (prev * (1.0 - w) + cur * w).round().clamp(0, 255).to(at::kByte));
            }
            s.last_preview = preview[k];
        }
    }
    const double decode_ms = ms_since(t1);
    const double block_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();

    // Overlay numbers for this block.
    render::OverlayStats& st = s.stats;
    const core::CacheStats cs = s.cache->stats();
    const core::CodecConfig& codec = s.cache->policy().codec;
    st.memory.codec = codec.describe();
    st.memory.kv_bytes = cs.bytes;
    st.memory.bf16_bytes = cs.bf16_bytes;
    st.memory.layer_bytes.clear();
    st.memory.layer_bf16_bytes.clear();
    st.quality.key.clear();
    st.quality.value.clear();
    st.quality.compresses = codec.compresses();
    double key_sum = 0.0, value_sum = 0.0;
    bool any_span = false;
    for (const core::LayerCacheStats& l : cs.layers) {
        st.memory.layer_bytes.push_back(l.bytes());
        st.memory.layer_bf16_bytes.push_back(l.bf16_bytes);
        if (l.spans > 0) {
            any_span = true;
            st.quality.key.push_back(role_error(l.key));
            st.quality.value.push_back(role_error(l.value));
            key_sum += l.key.last_rel_error;
            value_sum += l.value.last_rel_error;
        }
    }
    if (!cs.layers.empty()) {
        const core::LayerCacheStats& l0 = cs.layers.front();
        st.memory.frames_kept = l0.frames;
        st.memory.sink_frames = l0.sink_frames;
        st.memory.span_frames = l0.span_frames;
        st.memory.tail_frames = l0.tail_frames;
        st.memory.spans = l0.spans;
    }
    st.memory.window_frames = s.cache->policy().window_frames;
    const c10::Device device = s.model->device;
    if (device.is_cuda()) {
        st.memory.free_memory_source = "device";
        st.memory.free_bytes = core::free_memory_bytes(device);
    } else {
        st.memory.free_memory_source = "host RAM";
        st.memory.free_bytes = host_available_bytes();
    }
    st.memory.fit_frames_bf16 = frames_that_fit(*s.projection_bf16, st.memory.free_bytes);
    st.memory.fit_frames_codec = frames_that_fit(*s.projection_codec, st.memory.free_bytes);
    if (any_span) {
        const double n = static_cast<double>(st.quality.key.size());
        push_history(st.quality.key_history, static_cast<float>(key_sum / n));
        push_history(st.quality.value_history, static_cast<float>(value_sum / n));
    }
    st.performance.device = core::device_name(device);
    if (world_timing) {
        st.performance.cache_ms = world_timing->cache_ms;
        st.performance.dit_ms = world_timing->dit_ms;
        st.performance.decode_ms = world_timing->decode_ms + decode_ms;
    } else {
        st.performance.cache_ms = timing.cache_ms;
        st.performance.dit_ms = std::max(0.0, block_ms - timing.cache_ms);
        st.performance.decode_ms = decode_ms;
    }
    push_history(st.performance.chunk_ms_history, static_cast<float>(block_ms + decode_ms));
    st.performance.chunks += 1;
    st.info.model = s.model->label;
    st.info.decoder = s.model->decoder_label;
    st.info.action = action_text(actions.front());

    // Reference frames, trajectory, publishing (paced).
    const double fraction = 1.0 / fpl;
    const auto period = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / std::max(1, s.options.fps)));
    std::size_t next_model = 0;
    bool first = true;
    double reference_ms = 0.0;
    for (std::int64_t k = 0; k < f; ++k) {
        const input::Action& action = actions[static_cast<std::size_t>(k)];
        for (int j = 0; j < fpl; ++j) {
            {
                std::lock_guard lock(mutex_);
                if (stop_) return;
            }
            input::CameraState next = input::apply_action(s.pose, action, s.step, fraction);
            s.pose = s.world ? s.world->on_ground(next) : next;
            ViewerFrame& out = frames_.back();
            out.index = s.frame_index++;
            copy_frame(model_frames[next_model++], out.model);
            const auto tr = Clock::now();
            if (s.world) {
                out.reference.width = s.render.width;
                out.reference.height = s.render.height;
                out.reference.rgb.resize(static_cast<std::size_t>(s.render.width) *
                                         static_cast<std::size_t>(s.render.height) * 3);
                world::render(*s.world, s.pose, s.render, out.reference.rgb);
            } else {
                out.reference = RgbFrame{};
            }
            reference_ms += ms_since(tr);
            out.pose_text = pose_text(s.pose, s.world.get());
            out.input_changed_at.reset();
            if (first && input_changed) out.input_changed_at = in.changed_at;
            first = false;
            if (s.recorder) {
                try {
                    s.recorder->push({out.model.rgb.data(), out.model.width, out.model.height,
                                      out.model.width * 3});
                } catch (const std::exception& e) {
                    s.recorder.reset();
                    post_message(std::string("recording stopped: ") + e.what(), true);
                }
            }
            st.performance.dropped_record = s.recorder ? s.recorder->stats().frames_dropped : 0;
            st.performance.frames_generated += 1;
            // Video frames per second of work: DiT + decode + reference renders (estimated for
            // the frames of the block not drawn yet).
            const double frames_so_far = static_cast<double>(k * fpl + j + 1);
            const double block_frames = static_cast<double>(f * fpl);
            const double work_ms =
                block_ms + decode_ms + reference_ms / frames_so_far * block_frames;
            st.performance.generated_fps = work_ms > 0.0 ? 1000.0 * block_frames / work_ms : 0.0;
            st.performance.dropped_display = frames_.dropped();
            out.stats = st;

            // Pace: never faster than fps; when behind, show frames as soon as they exist.
            const auto now = Clock::now();
            if (s.next_deadline < now - period) s.next_deadline = now;
            std::this_thread::sleep_until(s.next_deadline);
            s.next_deadline += period;
            frames_.publish();
            bool finished = false;
            {
                std::lock_guard lock(mutex_);
                status_.frames_generated += 1;
                if (s.options.stop_after_frames > 0 &&
                    status_.frames_generated >= s.options.stop_after_frames) {
                    status_.finished = finished = true;
                }
            }
            if (wakeup_) wakeup_();
            if (finished) return;
        }
        {
            std::lock_guard lock(mutex_);
            trajectory_.latents.push_back({action, s.pose});
        }
    }
    {
        std::lock_guard lock(mutex_);
        status_.chunks += 1;
    }
    if (s.options.replay) {
        s.replay_position += static_cast<std::size_t>(f);
        if (s.replay_position >= s.options.replay->latents.size()) {
            {
                std::lock_guard lock(mutex_);
                status_.finished = true;
            }
            post_message("replay finished (" + std::to_string(s.options.replay->latents.size()) +
                             " latent frames)",
                         false);
        }
    }
}

}  // namespace qvg::app
