#pragma once
// The self-attention KV cache of a whole model: per layer a BF16 sink, quantized spans and a
// BF16 tail, fed by whole latent frames (see qvg.md, "What is compressed, and when").
//
//   frames:  | sink (BF16, forever) | span 0 | span 1 | ... | tail (BF16, newest) |
//
// Frames enter the sink until it holds `sink_frames`, then the tail. When the tail holds
// `span_frames + lag_frames` frames, its oldest `span_frames` become one encoded span (K and V
// separately, per batch*head). A window (if set) bounds the frames kept after the sink: the
// oldest tail frames go first when there are no spans; otherwise whole spans are evicted.
// Reads decode to the model's dtype. Every byte held is counted.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/codec.h"
#include "qvg/core/kv_history.h"

namespace qvg::core {

struct CachePolicy {
    CodecConfig codec = default_codec_config(CodecMethod::kBf16);
    int64_t span_frames = 24;   // frames per encoded span (Self-Forcing: 8 blocks of 3)
    int64_t lag_frames = 0;     // newest frames that stay BF16 beyond whole spans
    int64_t sink_frames = 0;    // first frames kept BF16 forever
    int64_t window_frames = 0;  // frames kept after the sink; 0 keeps everything
    uint64_t seed = 0;          // base of the per-layer, per-role, per-span codec streams
    // Unencoded rows (sink, tail, every row of the BF16 codec) are held as BF16 even when the
    // model computes in float32 (e.g. a world model on the CPU): the cache then holds what its
    // name and byte counts say. Reads give the model's dtype back.
    bool hold_bf16 = false;

    void validate() const;
};

// Bounds the frames `policy` holds (sink + window; window 0 holds everything) to `most`
// (>= 1): the window shrinks, and the sink too when it alone would fill the bound; spans shrink
// to at most a quarter of the window (at least 1 frame), so that most of a short window is
// encoded rather than held as a BF16 tail, and a compressing codec's window leaves room for the
// span - 1 frames that whole-span eviction keeps beyond it. Returns whether the policy changed. For
// models that were trained on histories of at most `most` frames.
bool bound_history(CachePolicy& policy, int64_t most);

struct CacheShape {
    int64_t num_layers = 0;
    int64_t batch = 1;
    int64_t heads = 0;
    int64_t head_dim = 0;
    int64_t tokens_per_frame = 0;
    void validate() const;
};

// Error telemetry of one role (K or V) of one layer.
struct RoleErrorStats {
    std::vector<double> last_stage_rel_error;  // after each smoothing stage, newest span
    double last_rel_error = 0.0;               // newest span, full reconstruction
    std::vector<double> mean_stage_rel_error;  // token-weighted over held spans
    double mean_rel_error = 0.0;
    bool is_bound = false;  // some span's error is a bound (stages dropped)
};

struct LayerCacheStats {
    int64_t frames = 0;  // frames held (sink + spans + tail)
    int64_t sink_frames = 0;
    int64_t span_frames = 0;  // frames inside encoded spans
    int64_t tail_frames = 0;
    int64_t spans = 0;
    int64_t sink_bytes = 0;
    int64_t span_bytes = 0;
    int64_t tail_bytes = 0;
    int64_t bytes() const { return sink_bytes + span_bytes + tail_bytes; }
    int64_t bf16_bytes = 0;  // the same frames held as BF16 K and V
    RoleErrorStats key;
    RoleErrorStats value;
};

struct CacheStats {
    std::vector<LayerCacheStats> layers;
    int64_t bytes = 0;
    int64_t bf16_bytes = 0;
    int64_t frames = 0;        // frames held per layer
    int64_t first_frame = -1;  // oldest absolute frame index held after the sink, -1 if none
    double ratio() const { return bytes > 0 ? static_cast<double>(bf16_bytes) / bytes : 1.0; }
};

class KVCache final : public History {
  public:
    KVCache(const CacheShape& shape, const CachePolicy& policy);
    ~KVCache() override;

    int64_t num_layers() const override;
    LayerHistory& layer(int64_t index) override;
    void clear() override;
    int64_t renumber_frames() override;

    const CacheShape& shape() const { return shape_; }
    const CachePolicy& policy() const { return policy_; }
    const Codec& codec() const { return *codec_; }

    CacheStats stats() const;

    // Stage slider: new spans use `stages`; when it is lower than what old spans hold, their
    // finest stages are dropped at once so memory is given back. Only for the qvg codec.
    void set_stages(int stages);

    // Bytes the policy would hold per layer for `frames` frames (formula, no data): for
    // projections in the memory overlay and the accounting test.
    int64_t projected_layer_bytes(int64_t frames) const;

  private:
    class Layer;
    CacheShape shape_;
    CachePolicy policy_;
    std::unique_ptr<Codec> codec_;
    std::vector<std::unique_ptr<Layer>> layers_;
};

}  // namespace qvg::core
