#pragma once
// The self-attention history a transformer layer attends to, as the model sees it.
// The model family (Wan DiT, WorldPlay) owns RoPE; the cache owns storage and compression.
// Keys are stored BEFORE RoPE (qvg.md: quantizing post-RoPE keys is about 25% worse), so
// the cache reports the absolute latent-frame index of every frame it still holds and the
// model rotates at read time.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/wan_rope.h"

namespace qvg::core {

struct KVView {
    at::Tensor k;                 // [B, L, H, D] keys before RoPE, L = frames.size() * tokens/frame
    at::Tensor v;                 // [B, L, H, D]
    std::vector<int64_t> frames;  // absolute latent-frame index of each held frame, ascending
    bool empty() const { return frames.empty(); }
};

class LayerHistory {
  public:
    virtual ~LayerHistory() = default;
    // Everything this layer holds, decoded to the model's dtype.
    virtual KVView read() = 0;
    // The absolute frame index of each held frame (what read() would report), without decoding.
    virtual std::vector<int64_t> frames() { return read().frames; }
    // Writes what read() returns straight into the attention's buffers: k_out, v_out
    // [B, L, H, D] views (L = frames().size() * tokens per frame), keys rotated by `rope` (angles
    // of all L tokens in order) when given. Implementations that store compressed K/V override
    // this to decode (and rotate) in one pass, with no intermediate copy of the history.
    virtual void read_into(const at::Tensor& k_out, const at::Tensor& v_out,
                           const RopeAngles* rope);
    // Commits whole clean frames: k, v [B, F * tokens_per_frame, H, D] for absolute frames
    // first_frame .. first_frame + F - 1. Throws on bad input and leaves the history unchanged.
    virtual void append(const at::Tensor& k, const at::Tensor& v, int64_t first_frame) = 0;
};

class History {
  public:
    virtual ~History() = default;
    virtual int64_t num_layers() const = 0;
    virtual LayerHistory& layer(int64_t index) = 0;
    virtual void clear() = 0;
    // Relabels the frames held (the same in every layer) 0, 1, 2, ... in order, so that a
    // history that forgot frames (a window, a sink) shows the model contiguous positions, as in
    // training, and its positions never outgrow the RoPE tables. Returns the number of frames
    // held (the next free index), or -1 when this history does not support it (left unchanged).
    virtual int64_t renumber_frames() { return -1; }
};

}  // namespace qvg::core
