#include "qvg/core/world_model_session.h"

#include <algorithm>
#include <chrono>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include "qvg/core/error.h"

namespace qvg::core {

CacheShape world_cache_shape(const WorldModel& model, int64_t batch) {
    const WorldModelConfig& c = model.config();
    CacheShape shape;
    shape.num_layers = c.dit.num_layers;
    shape.batch = batch;
    shape.heads = c.dit.num_heads;
    shape.head_dim = c.dit.head_dim();
    shape.tokens_per_frame = c.tokens_per_latent();
    return shape;
}

WorldModelSession::WorldModelSession(const WorldModel& model, History& history,
                                     WorldSamplingOptions options)
    : model_(model), history_(history), contiguous_positions_(options.contiguous_positions) {
    if (options.seeds.empty()) options.seeds.push_back(options.seed);
    for (uint64_t seed : options.seeds) {
        gens_.push_back(at::make_generator<at::CPUGeneratorImpl>(seed));
    }
    const WorldModelConfig& c = model.config();
    if (const auto* cache = dynamic_cast<const KVCache*>(&history)) {
        QVG_CHECK(cache->shape().batch == batch(),
                  "world session: {} walk(s) (noise seeds) for a cache of batch {}", batch(),
                  cache->shape().batch);
    }
    QVG_CHECK(history.num_layers() == c.dit.num_layers,
              "world session: history has {} layers, the model {}", history.num_layers(),
              c.dit.num_layers);
    QVG_CHECK(options.steps >= 0, "world session: negative step count {}", options.steps);
    const int64_t steps = options.steps > 0 ? options.steps : c.sample_steps;
    // Uniform in u, warped by the shift: the same sigma distribution the model was trained on.
    for (int64_t j = 0; j < steps; ++j) {
        const double u = 1.0 - static_cast<double>(j) / static_cast<double>(steps);
        sigmas_.push_back(static_cast<float>(u * c.shift / (1.0 + (c.shift - 1.0) * u)));
    }
    c10::InferenceMode guard;
    text_ = model.text(batch());
}

at::Tensor WorldModelSession::labels_tensor(std::span<const int> labels) const {
    for (int label : labels) {
        QVG_CHECK(label >= 0 && label <= 80, "world session: action label {} is outside 0..80",
                  label);
    }
    std::vector<int64_t> values(labels.begin(), labels.end());
    return at::tensor(values, at::kLong).view({batch(), -1});
}

void WorldModelSession::prime(std::span<const uint8_t> rgb, int64_t frames,
                              std::span<const int> labels) {
    QVG_CHECK(!generated_, "world session: context can only be given before generating");
    commit(rgb, frames, labels);
}

void WorldModelSession::commit(std::span<const uint8_t> rgb, int64_t frames,
                               std::span<const int> labels) {
    const WorldModelConfig& c = model_.config();
    const int64_t t = c.frames_per_latent, s = c.image_size, k = c.chunk_latents;
    QVG_CHECK(frames > 0 && frames % (t * k) == 0,
              "world session: {} ground-truth frames are not a whole number of blocks ({} frames)",
              frames, t * k);
    const int64_t b = batch();
    QVG_CHECK(static_cast<int64_t>(rgb.size()) == b * frames * s * s * 3,
              "world session: expected {} bytes for {} x {} frames of {}x{} RGB, found {}",
              b * frames * s * s * 3, b, frames, s, s, rgb.size());
    const int64_t latents = frames / t;
    QVG_CHECK(static_cast<int64_t>(labels.size()) == b * latents,
              "world session: expected {} action labels (one per latent of {} walk(s)), found {}",
              b * latents, b, labels.size());
    at::Tensor lab = labels_tensor(labels);
    c10::InferenceMode guard;
    at::Tensor video = video_from_rgb8(rgb.data(), b * frames, s, s, t);
    settle_positions();
    at::Tensor z = model_.normalize(model_.encode(video));  // [B * N, C, h, w]
    z = z.view({b, latents, z.size(1), z.size(2), z.size(3)});
    const at::Tensor t0 = at::zeros({b, k}, at::kFloat);
    for (int64_t i = 0; i < latents / k; ++i) {
        model_.flow(z.narrow(1, i * k, k), t0, lab.narrow(1, i * k, k), text_, &history_,
                    next_latent_, CacheWrite::kCommit);
        next_latent_ += k;
    }
    last_latents_ = z.narrow(1, latents - k, k);
}

void WorldModelSession::settle_positions() {
    if (!contiguous_positions_) return;
    const int64_t held = history_.renumber_frames();
    if (held >= 0) next_latent_ = held;
}

at::Tensor WorldModelSession::block_labels(std::span<const int> labels) const {
    const int64_t k = model_.config().chunk_latents;
    QVG_CHECK(static_cast<int64_t>(labels.size()) == batch() * k,
              "world session: expected {} action labels for a block of {} walk(s), found {}",
              batch() * k, batch(), labels.size());
    return labels_tensor(labels);
}

at::Tensor WorldModelSession::denoise(const at::Tensor& labels) {
    const WorldModelConfig& c = model_.config();
    const int64_t k = c.chunk_latents, ls = c.latent_size();
    const at::Device device = model_.device();
    const std::vector<int64_t> shape = {1, k, c.latent_channels, ls, ls};
    // Each walk's noise from its own stream: what a session of that walk alone draws.
    auto noise = [&] {
        std::vector<at::Tensor> parts;
        parts.reserve(gens_.size());
        for (auto& gen : gens_) {
            parts.push_back(at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)));
        }
        return (parts.size() == 1 ? parts.front() : at::cat(parts)).to(device);
    };
    at::Tensor x = noise();
    at::Tensor x0;
    const auto steps = static_cast<int64_t>(sigmas_.size());
    for (int64_t j = 0; j < steps; ++j) {
        const float sigma = sigmas_[static_cast<size_t>(j)];
        at::Tensor v =
            model_.flow(x, at::full({batch(), k}, sigma * 1000.0f, at::kFloat), labels, text_,
                        &history_, next_latent_, CacheWrite::kAttendOnly, &stats_);
        x0 = x - sigma * v;
        if (j + 1 < steps) {
            const float next = sigmas_[static_cast<size_t>(j + 1)];
            x = (1.0f - next) * x0 + next * noise();
        }
    }
    return x0;
}

WorldFrames WorldModelSession::frames_of(const at::Tensor& x0) const {
    const WorldModelConfig& c = model_.config();
    // [B * k, 3T, H, W], walk after walk
    at::Tensor video = model_.decode(model_.denormalize(x0.flatten(0, 1)));
    WorldFrames out;
    out.batch = batch();
    out.count = c.chunk_latents * c.frames_per_latent;
    out.height = c.image_size;
    out.width = c.image_size;
    out.rgb = rgb8_from_video(video, c.frames_per_latent);
    return out;
}

void WorldModelSession::start_block() {
    block_start_ = std::chrono::steady_clock::now();
    stats_ = ForwardStats{};
    stats_.synchronize = model_.device().is_cuda();  // cache time measured exactly
}

WorldFrames WorldModelSession::finish_block(const at::Tensor& x0, int64_t dit_calls) {
    using Ms = std::chrono::duration<double, std::milli>;
    const auto decode_start = std::chrono::steady_clock::now();
    WorldFrames out = frames_of(x0);
    const auto end = std::chrono::steady_clock::now();
    last_latents_ = x0;
    last_dit_calls_ = dit_calls;
    last_step_ms_ = Ms(end - block_start_).count();
    last_timing_.decode_ms = Ms(end - decode_start).count();
    last_timing_.cache_ms = stats_.cache_ms;
    last_timing_.dit_ms = std::max(0.0, Ms(decode_start - block_start_).count() - stats_.cache_ms);
    return out;
}

WorldFrames WorldModelSession::step(std::span<const int> labels) {
    const WorldModelConfig& c = model_.config();
    at::Tensor lab = block_labels(labels);
    start_block();
    c10::InferenceMode guard;
    settle_positions();
    at::Tensor x0 = denoise(lab);
    model_.flow(x0, at::zeros({batch(), c.chunk_latents}, at::kFloat), lab, text_, &history_,
                next_latent_, CacheWrite::kCommit, &stats_);
    next_latent_ += c.chunk_latents;
    generated_ = true;
    return finish_block(x0, static_cast<int64_t>(sigmas_.size()) + 1);
}

WorldFrames WorldModelSession::predict(std::span<const int> labels) {
    at::Tensor lab = block_labels(labels);
    start_block();
    c10::InferenceMode guard;
    settle_positions();
    at::Tensor x0 = denoise(lab);
    return finish_block(x0, static_cast<int64_t>(sigmas_.size()));
}

}  // namespace qvg::core
