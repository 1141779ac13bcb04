#pragma once
// Autoregressive rollout of the world model with the Self-Forcing block protocol: ground-truth
// context frames are encoded and committed by clean passes, then every block of chunk_latents
// latent frames starts from noise, is denoised in a few steps (x0 = x - sigma * v, re-noised to
// the next sigma with fresh noise) attending to the history plus itself, and is committed by a
// clean pass at t = 0. Any History works (KVCache with any codec, window or sink).
// Pixels in and out are plain bytes, so the viewer and `qvg eval` need no Torch types.
//
// A session may run several walks side by side as one batch (WorldSamplingOptions::seeds, a
// KVCache of that batch): every call then takes and returns the walks' frames and labels one
// walk after another, and each walk draws its noise from its own stream, the one a session of
// that walk alone would draw. On a GPU a batch of walks costs little more than one.
//
// Besides step() (denoise + commit), a block can be predicted without being committed and ground
// truth can be committed at any point, so that teacher-forced scoring ("1 chunk ahead": see the
// truth up to block i, predict block i + 1) costs one denoising loop and one clean pass per block:
//   session.prime(context);  for each block: session.predict(labels); session.commit(truth);

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "qvg/core/kv_cache.h"
#include "qvg/core/kv_history.h"
#include "qvg/core/world_model.h"

namespace qvg::core {

struct WorldFrames {
    int64_t batch = 1;  // walks, one after another in rgb
    int64_t count = 0;  // frames per walk
    int64_t height = 0;
    int64_t width = 0;
    std::vector<uint8_t> rgb;  // [batch, count, height, width, 3]
};

// Where the wall time of the last step() or predict() went.
struct WorldStepTiming {
    double dit_ms = 0;     // DiT calls, without the history's reads and appends
    double cache_ms = 0;   // history reads and appends (decoding and encoding spans)
    double decode_ms = 0;  // latents -> RGB frames (the autoencoder's decoder)
};

struct WorldSamplingOptions {
    int64_t steps = 0;  // denoising steps per block; 0 = the config's sample_steps
    uint64_t seed = 0;  // noise stream
    // One noise stream per walk of a batch; empty runs one walk with `seed`. The history's
    // batch must match (world_cache_shape(model, seeds.size())).
    std::vector<uint64_t> seeds = {};
    // Before every block the history's frames are renumbered 0, 1, 2, ... (History::
    // renumber_frames): a window or sink that dropped frames shows the model contiguous
    // positions, as every training clip did, and a long session never runs out of RoPE
    // positions. No effect on a history that holds every frame.
    bool contiguous_positions = true;
};

// The cache geometry of a model for `batch` walks side by side, for building a KVCache.
CacheShape world_cache_shape(const WorldModel& model, int64_t batch = 1);

class WorldModelSession {
  public:
    // The model and the history must outlive the session; the history must be empty.
    WorldModelSession(const WorldModel& model, History& history, WorldSamplingOptions options = {});

    // Walks run side by side (the seeds given, or 1).
    int64_t batch() const { return static_cast<int64_t>(gens_.size()); }

    // Commits ground-truth context: `frames` RGB8 frames per walk (a multiple of
    // T * chunk_latents, at the model's size; walk after walk) and one action label per latent
    // (likewise). Only before the first generated block.
    void prime(std::span<const uint8_t> rgb, int64_t frames, std::span<const int> labels);

    // Commits ground-truth frames at next_latent() like prime(), but at any point, also after
    // generated blocks: each block is encoded and committed by a clean pass at t = 0. Throws on
    // bad input before anything is committed.
    void commit(std::span<const uint8_t> rgb, int64_t frames, std::span<const int> labels);

    // Generates the next block under one label per latent (chunk_latents of them per walk) and
    // returns its chunk_latents * T frames per walk. On error nothing is committed.
    WorldFrames step(std::span<const int> labels);

    // The same denoising steps as step() without the clean pass: the block is returned but not
    // committed, so the history and next_latent() stay as they were (the noise stream advances).
    WorldFrames predict(std::span<const int> labels);

    // The position of the next block (the frames held, with contiguous_positions).
    int64_t next_latent() const { return next_latent_; }
    const std::vector<float>& sigmas() const { return sigmas_; }
    // Normalised latents [batch, chunk_latents, C, h, w] of the last block generated, predicted
    // or committed.
    const at::Tensor& last_latents() const { return last_latents_; }
    // DiT calls and wall time (decoding included) of the last step() or predict().
    int64_t last_dit_calls() const { return last_dit_calls_; }
    double last_step_ms() const { return last_step_ms_; }
    const WorldStepTiming& last_timing() const { return last_timing_; }

  private:
    // Labels [batch, n] of `labels`, walk after walk.
    at::Tensor labels_tensor(std::span<const int> labels) const;
    at::Tensor block_labels(std::span<const int> labels) const;
    // The denoising loop of one block at next_latent_ (attend only); returns x0 [B, k, C, h, w].
    at::Tensor denoise(const at::Tensor& labels);
    WorldFrames frames_of(const at::Tensor& x0) const;
    // Renumbers the history (contiguous_positions) and moves next_latent_ after it.
    void settle_positions();
    // Timing of one step() or predict(): start_block() first, finish_block() decodes the
    // block's frames and records where the time went.
    void start_block();
    WorldFrames finish_block(const at::Tensor& x0, int64_t dit_calls);

    const WorldModel& model_;
    History& history_;
    TextContext text_;
    std::vector<at::Generator> gens_;  // one noise stream per walk
    bool contiguous_positions_ = true;
    std::vector<float> sigmas_;  // per step, decreasing from 1
    int64_t next_latent_ = 0;
    bool generated_ = false;
    at::Tensor last_latents_;
    int64_t last_dit_calls_ = 0;
    double last_step_ms_ = 0.0;
    WorldStepTiming last_timing_;
    ForwardStats stats_;  // cache time of the calls of the current step
    std::chrono::steady_clock::time_point block_start_;
};

}  // namespace qvg::core
