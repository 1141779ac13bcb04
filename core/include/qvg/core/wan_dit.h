#pragma once
// The causal Wan DiT (Wan2.1 / Self-Forcing's CausalWanModel) run block by block against a
// History of clean, pre-RoPE keys.
//
// One call embeds the latents of a block, runs every layer's self-attention over
// [history ++ this block], cross-attention against the per-prompt text K/V, the FFN, and the
// head, and returns the flow prediction. Numerics follow upstream: LayerNorm and the q/k RMSNorm
// normalise in fp32, the timestep sinusoid and the RoPE angles are computed in float64, the rest
// runs in the model dtype (fp32 or bf16; weights are cast once at load).
//
// For training, forward_masked runs a whole teacher-forced sequence (the clean and the noisy
// copies of every chunk) in one call under a frame-level attention mask instead of one call per
// block and pass; both share the layer code and differ only in how self-attention picks its keys.
//
// Extension points for WorldPlay (its own modules plug in here): a per-frame conditioning embedding
// added to the time embedding e before the projection and the head, and an extra self-attention
// branch per layer whose output is added to the RoPE branch's before the gate.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/kv_history.h"
#include "qvg/core/wan_config.h"
#include "qvg/core/wan_rope.h"
#include "qvg/core/weights.h"

namespace qvg::core {

// What a call does with the K/V of its own block.
//
// Upstream writes every call's K/V into the block's cache rows, overwriting the previous step's,
// and attends to rows [0, end of block). Committing only on the clean pass is equivalent: a
// denoising call attends to exactly the same keys (the earlier blocks' clean K/V plus its own),
// and the rows a denoising step wrote are always overwritten by the clean pass before any later
// block reads them, so later blocks only ever see clean K/V in both schemes.
enum class CacheWrite {
    kAttendOnly,  // denoising steps: attend to history ++ own K/V, commit nothing
    kCommit,      // clean pass: also append the block's (pre-RoPE) K/V to every layer's history
};

// Per-prompt cross-attention inputs, computed once by WanDiT::encode_text.
struct TextContext {
    at::Tensor embedding;       // [B, text_len, dim] text_embedding output
    std::vector<at::Tensor> k;  // per layer [B, text_len, H, D] = norm_k(cross_attn.k(embedding))
    std::vector<at::Tensor> v;  // per layer [B, text_len, H, D] = cross_attn.v(embedding)
    int64_t batch() const { return embedding.defined() ? embedding.size(0) : 0; }
};

// What an extra attention branch sees in layer `layer` of one call.
struct AttentionBranchInput {
    int64_t layer = 0;
    at::Tensor x;  // [B, L, dim] the modulated, normalised input of self-attention
    at::Tensor q;  // [B, L, H, D] after the q RMSNorm, before RoPE
    at::Tensor k;  // [B, L, H, D] after the k RMSNorm, before RoPE
    at::Tensor v;  // [B, L, H, D]
    int64_t first_frame = 0;
    int64_t frames = 0, rows = 0, cols = 0;  // token grid of this call, L = frames * rows * cols
    CacheWrite mode = CacheWrite::kAttendOnly;
};

// A second self-attention branch (WorldPlay's PRoPE). It owns its weights and any cache of its
// own; it must honour `mode` the way the RoPE branch does.
class AttentionBranch {
  public:
    virtual ~AttentionBranch() = default;
    // Returns [B, L, dim] in the model dtype, added to the RoPE branch's output (after its output
    // projection, before the gate).
    virtual at::Tensor forward(const AttentionBranchInput& in) = 0;
};

// Per-call measurements.
struct ForwardStats {
    bool synchronize = false;  // synchronise the device around cache calls so cache_ms is exact
    double cache_ms = 0;       // accumulated: time in History read() and append()
};

// Intermediate tensors by stage name, for locating divergences against reference dumps:
// patch_embedding [B, L, dim], time_embedding [B, F, dim], time_projection [B, F, 6, dim],
// block{i}_self_attn / block{i}_cross_attn / block{i}_ffn (before gates) and block{i} [B, L, dim],
// head [B, F, rows*cols, out] (before unpatchify).
using StageProbe = std::function<void(std::string_view stage, const at::Tensor& value)>;

// What the model is for. kInference: weights are inference tensors in `dtype` and every call runs
// under c10::InferenceMode with in-place residual updates. kTraining: weights are float32 leaf
// tensors that require grad (parameters()); calls record autograd history and update the
// residual stream out of place, because autograd keeps the layer norms' inputs for backward.
enum class WanMode { kInference, kTraining };

struct ForwardExtras {
    at::Tensor frame_embedding;         // [B, F, dim] added to e (e.g. an action); undefined = none
    AttentionBranch* branch = nullptr;  // extra self-attention branch; null = none
    ForwardStats* stats = nullptr;
    StageProbe probe;
};

// A whole sequence in one call (WanDiT::forward_masked): frame i of the call sits at latent
// frame index positions[i] for RoPE, and its tokens attend to the tokens of frame j iff
// mask[i][j]. Frames may repeat a position (a noisy and a clean copy of the same frame).
struct FrameAttention {
    std::vector<int64_t> positions;  // [F] RoPE latent-frame index of each frame of the call
    at::Tensor mask;                 // [F, F] bool on the model's device: query i sees key j
};

// Teacher forcing of the block protocol in one call, for `chunks` chunks of `chunk_frames`
// frames. The call's frames are [clean chunks 0 .. chunks-2 ++ noisy chunks 0 .. chunks-1] (the
// last chunk's clean pass feeds nothing and is left out), each at its true frame index. A clean
// frame of chunk c sees the clean frames of chunks <= c (the commit pass of chunk c against the
// history); a noisy frame of chunk c sees the clean frames of chunks < c and the noisy frames of
// chunk c (a denoising call of chunk c). These are exactly the keys and positions of the
// block-by-block calls, so forward_masked gives their outputs up to rounding. The mask is built
// on `device` without host-to-device copies.
FrameAttention teacher_forcing_attention(int64_t chunks, int64_t chunk_frames, at::Device device);

class WanDiT {
  public:
    using Weights = TensorMap;

    // Checks every tensor (missing, unexpected and mis-shaped names are listed in one
    // FormatError),
    // then copies them to `device` in `dtype` (kFloat or kBFloat16). Names are upstream's
    // (patch_embedding.weight, blocks.0.self_attn.q.weight, ...), prefixes already stripped.
    // With WanMode::kTraining the tensors are cloned (never aliased with `weights`) and dtype
    // must be kFloat (bf16 training goes through autocast).
    WanDiT(const WanConfig& config, const Weights& weights, at::Device device, at::ScalarType dtype,
           WanMode mode = WanMode::kInference);

    // Name and shape of every tensor a checkpoint for `config` holds.
    static std::vector<ExpectedTensor> expected_tensors(const WanConfig& config);

    const WanConfig& config() const { return config_; }
    at::Device device() const { return device_; }
    at::ScalarType dtype() const { return dtype_; }
    const WanRope& rope() const { return rope_; }
    WanMode mode() const { return mode_; }

    // The stored tensors themselves (q/k/v stacked, the patch embedding as a matrix), for an
    // optimizer to update in place. Throws Error unless the model was built for kTraining.
    std::vector<at::Tensor> parameters() const;
    // The weights under upstream names and shapes (the inverse of the constructor), detached
    // copies on the model's device in its dtype: for saving a trained model.
    Weights weights() const;

    // text [B, L <= text_len, text_dim] (or [L, text_dim]): zero-pads to text_len rows (padding
    // is not masked, as upstream) and computes every layer's cross-attention K/V.
    TextContext encode_text(const at::Tensor& text) const;

    // t [B, F] (any float dtype) -> e [B, F, dim]: float64 sinusoid (cos half first), cast, MLP.
    at::Tensor time_embedding(const at::Tensor& t) const;
    // e [B, F, dim] -> e0 [B, F, 6, dim].
    at::Tensor time_projection(const at::Tensor& e) const;

    // x [B, F, C, H, W] latents of frames first_frame .. first_frame + F - 1, t [B, F] timesteps.
    // Attends to history->layer(i).read() ++ the block's own K/V (history may be null for a
    // history-less call with kAttendOnly). With kCommit, the block's pre-RoPE K/V are appended
    // to every layer after the whole call succeeded, so an error leaves the history unchanged.
    // Returns the flow prediction [B, F, out_dim, H, W] in the model dtype.
    at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const TextContext& ctx,
                       History* history, int64_t first_frame, CacheWrite mode,
                       const ForwardExtras& extras = {}) const;

    // For training: every frame of a sequence in one call, with no History. x [B, F, C, H, W],
    // t [B, F] (each frame its own timestep), extras.frame_embedding [B, F, dim] as in forward;
    // self-attention runs over all F frames under `attention` (RoPE positions and a frame-level
    // mask, expanded to tokens and broadcast over batch and heads), so one call replaces a chain
    // of block-by-block calls whose attention it reproduces (teacher_forcing_attention). Works
    // with autograd (kTraining) and under autocast. Attention branches are not supported
    // (extras.branch must be null). Returns the flow prediction [B, F, out_dim, H, W].
    at::Tensor forward_masked(const at::Tensor& x, const at::Tensor& t, const TextContext& ctx,
                              const FrameAttention& attention,
                              const ForwardExtras& extras = {}) const;

  private:
    struct Block {
        at::Tensor modulation;  // blocks.N.modulation [1, 6, dim]
        at::Tensor qkv_w;       // blocks.N.self_attn.{q,k,v}.weight stacked [3*dim, dim]
        at::Tensor qkv_b;       // blocks.N.self_attn.{q,k,v}.bias stacked [3*dim]
        at::Tensor norm_q;      // blocks.N.self_attn.norm_q.weight [dim] (undefined: no qk_norm)
        at::Tensor norm_k;      // blocks.N.self_attn.norm_k.weight [dim]
        at::Tensor o_w;         // blocks.N.self_attn.o.weight [dim, dim]
        at::Tensor o_b;         // blocks.N.self_attn.o.bias [dim]
        at::Tensor norm3_w;     // blocks.N.norm3.weight [dim] (undefined: no cross_attn_norm)
        at::Tensor norm3_b;     // blocks.N.norm3.bias [dim]
        at::Tensor cq_w;        // blocks.N.cross_attn.q.weight [dim, dim]
        at::Tensor cq_b;        // blocks.N.cross_attn.q.bias [dim]
        at::Tensor ck_w;        // blocks.N.cross_attn.k.weight [dim, dim]
        at::Tensor ck_b;        // blocks.N.cross_attn.k.bias [dim]
        at::Tensor cv_w;        // blocks.N.cross_attn.v.weight [dim, dim]
        at::Tensor cv_b;        // blocks.N.cross_attn.v.bias [dim]
        at::Tensor c_norm_q;    // blocks.N.cross_attn.norm_q.weight [dim]
        at::Tensor c_norm_k;    // blocks.N.cross_attn.norm_k.weight [dim]
        at::Tensor co_w;        // blocks.N.cross_attn.o.weight [dim, dim]
        at::Tensor co_b;        // blocks.N.cross_attn.o.bias [dim]
        at::Tensor ffn1_w;      // blocks.N.ffn.0.weight [ffn_dim, dim]
        at::Tensor ffn1_b;      // blocks.N.ffn.0.bias [ffn_dim]
        at::Tensor ffn2_w;      // blocks.N.ffn.2.weight [dim, ffn_dim]
        at::Tensor ffn2_b;      // blocks.N.ffn.2.bias [dim]
    };

    // The self-attention core of one layer, the only part in which forward and forward_masked
    // differ: (layer, h, q, k, v) with h the modulated input [B, L, dim] and q, k, v [B, L, H, D]
    // before RoPE -> the attention [B, H, L, D] (before the output projection) and an optional
    // term [B, L, dim] added after the projection (an AttentionBranch's output).
    struct SelfAttentionOut {
        at::Tensor attn;
        at::Tensor extra;
    };
    using SelfAttention =
        std::function<SelfAttentionOut(int64_t layer, const at::Tensor& h, const at::Tensor& q,
                                       const at::Tensor& k, const at::Tensor& v)>;

    // Throws Error unless x, t, ctx and extras.frame_embedding fit each other and the model.
    void check_inputs(const at::Tensor& x, const at::Tensor& t, const TextContext& ctx,
                      const ForwardExtras& extras) const;
    // Patch embedding, time embedding, every layer (self-attention through `attend`),
    // cross-attention, FFN and the head, for checked inputs. Returns the flow.
    at::Tensor run(const at::Tensor& x, const at::Tensor& t, const TextContext& ctx,
                   const ForwardExtras& extras, const SelfAttention& attend) const;
    at::Tensor qk_norm(const at::Tensor& x, const at::Tensor& weight) const;
    // Every stored weight tensor, in a fixed order (undefined optional ones left out).
    std::vector<const at::Tensor*> stored() const;

    WanConfig config_;
    at::Device device_;
    at::ScalarType dtype_;
    WanMode mode_ = WanMode::kInference;
    WanRope rope_;
    at::Tensor sinusoid_freqs_;  // [freq_dim / 2] float64, 10000^(-k / (freq_dim/2))
    at::Tensor patch_w_;         // patch_embedding.weight as [dim, in_dim * pt * ph * pw]
    at::Tensor patch_b_;         // patch_embedding.bias [dim]
    at::Tensor text1_w_;         // text_embedding.0.weight [dim, text_dim]
    at::Tensor text1_b_;         // text_embedding.0.bias [dim]
    at::Tensor text2_w_;         // text_embedding.2.weight [dim, dim]
    at::Tensor text2_b_;         // text_embedding.2.bias [dim]
    at::Tensor time1_w_;         // time_embedding.0.weight [dim, freq_dim]
    at::Tensor time1_b_;         // time_embedding.0.bias [dim]
    at::Tensor time2_w_;         // time_embedding.2.weight [dim, dim]
    at::Tensor time2_b_;         // time_embedding.2.bias [dim]
    at::Tensor proj_w_;          // time_projection.1.weight [6*dim, dim]
    at::Tensor proj_b_;          // time_projection.1.bias [6*dim]
    std::vector<Block> blocks_;
    at::Tensor head_modulation_;  // head.modulation [1, 2, dim]
    at::Tensor head_w_;           // head.head.weight [out_dim * pt * ph * pw, dim]
    at::Tensor head_b_;           // head.head.bias [out_dim * pt * ph * pw]
};

}  // namespace qvg::core
