#pragma once
// KV-cache codecs behind one interface: QVG (k-means smoothing + progressive residual
// quantization + FP8-scaled INT2/INT4), and the baselines of qvg.md (BF16, FP8, RTN, KIVI,
// QuaRot-style Hadamard). A codec encodes one span [B, H, N, D] of a layer's K or V and
// decodes it back; every byte it keeps is counted.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/quant_pack.h"
#include "qvg/core/wan_rope.h"

namespace qvg::core {

enum class CodecMethod { kBf16, kFp8, kRtn, kQvg, kKivi, kQuarot };

// "bf16", "fp8", "rtn", "qvg", "kivi", "quarot" <-> CodecMethod. Throws on unknown names.
CodecMethod parse_codec_method(const std::string& name);
std::string codec_method_name(CodecMethod method);

struct CodecConfig {
    CodecMethod method = CodecMethod::kQvg;
    int bits = 2;             // INT2 (ternary) or INT4
    int group = 64;           // channels per FP8 scale (KIVI keys: tokens per scale)
    int stages = 1;           // PRQ stages (QVG); RTN is QVG with 0 stages
    int centroids = 256;      // per stage, at most 256
    int iterations = 2;       // Lloyd iterations per stage
    bool asymmetric = false;  // scale + zero point (KIVI always is)
    // QVG/RTN: the keys' last residual is quantized per channel, in groups of `group` tokens
    // (KIVI's split: keys carry their outliers in channels); values stay per token.
    bool channel_keys = false;
    // RTN/QVG/KIVI/QuaRot: the encoder searches each group's range for the least squared error
    // (GroupQuantSpec::clip_search); same bytes, same decoding.
    bool clip_search = false;
    // QVG: bits per codebook value. 16: BF16; 8: FP8 E4M3, twice the centroids in the same
    // bytes; 4: INT4 with an FP8 scale and zero point per centroid, about four times. The
    // residual is taken against the centroids as stored, so the scalar codes absorb the rounding.
    int codebook_bits = 16;
    bool warm_start = true;  // start k-means from the previous span's codebooks
    uint64_t seed = 0;       // private k-means / rotation stream

    // Throws qvg::core::Error naming the bad field.
    void validate() const;
    // "QVG INT2 G64 S1", "KIVI INT2 G32", "BF16", ...
    std::string describe() const;
    // Whether the method quantizes at all (BF16 does not).
    bool compresses() const { return method != CodecMethod::kBf16; }
};

// The paper's default per method: QVG INT2 G64 S1; RTN/QuaRot INT2 G16 and KIVI INT2 G32
// (2.5 bits each, the paper's 6.4x column).
CodecConfig default_codec_config(CodecMethod method);

enum class KVRole { kKey, kValue };

struct SpanStage {
    SpanStage() = default;
    SpanStage(at::Tensor ids_, at::Tensor centroids_, at::Tensor centroid_scales_ = {},
              at::Tensor centroid_zeros_ = {})
        : ids(std::move(ids_)),
          centroids(std::move(centroids_)),
          centroid_scales(std::move(centroid_scales_)),
          centroid_zeros(std::move(centroid_zeros_)) {}

    at::Tensor ids;  // uint8 [B, H, N]
    // By codebook_bits: 16, bf16 [B, H, C, D]; 8, FP8 E4M3 bits uint8 [B, H, C, D]; 4, INT4
    // codes uint8 [B, H, C, D/2] (two per byte, as the scalar codes) with FP8 scale and zero
    // point bits uint8 [B, H, C, 1] in centroid_scales and centroid_zeros.
    at::Tensor centroids;
    at::Tensor centroid_scales, centroid_zeros;
};

// A stage's codebook as BF16 [B, H, C, D], whichever way it is held (every format's values are
// exact in BF16; a BF16 codebook is returned as it is, not copied).
at::Tensor centroids_bf16(const SpanStage& stage);
// The same in fp32.
at::Tensor centroid_values(const SpanStage& stage);

struct EncodedSpan {
    CodecConfig config;  // as encoded (stages shrink when finer ones are dropped)
    KVRole role = KVRole::kKey;
    std::vector<int64_t> shape;            // [B, H, N, D]
    at::ScalarType dtype = at::kBFloat16;  // what decode returns
    at::Tensor payload;                    // BF16: values; FP8: E4M3 bits [B, H, N, D]
    at::Tensor token_scales;               // FP8: fp32 [B, H, N]
    GroupQuantized quant;                  // RTN / QVG / KIVI / QuaRot
    std::vector<SpanStage> stages;         // QVG codebooks, coarse to fine

    // Telemetry, measured at encode time.
    double input_norm = 0.0;              // ||X||_2
    std::vector<double> stage_rel_error;  // ||R_s|| / ||X|| after smoothing stage s
    double rel_error = 0.0;               // ||X - decode(X)|| / ||X||
    bool rel_error_is_bound = false;      // true after drop_stages (triangle-inequality bound)

    int64_t tokens() const { return shape.empty() ? 0 : shape[2]; }
    // Every byte held: payload, scales, zeros, codes, ids, codebooks.
    int64_t bytes() const;
};

// Launch shape of the fused CUDA decode (results are bit-identical for every choice; the
// defaults are the fastest measured, see kernels/qvg_decode.h).
struct DecodeLaunch {
    int parts_per_thread = 0;        // 8-channel parts per thread: 1, 2 or 4; 0 = default layout
    bool streaming_stores = true;    // evict-first stores (the span is read once)
    bool interleaved_parts = false;  // a thread's parts dim / parts apart (whole-line stores)
    bool shared_centroids = false;   // codebooks staged in shared memory, blocks loop over tokens
    int rows_per_thread = 0;         // > 0: flat grid over all heads' rows, this many per thread
    bool persistent = false;         // flat grid sized to the resident blocks, grid-stride loop
    bool lean_math = false;          // fewer conversion instructions (same bits)
    int blocks_per_sm = 0;           // 6 or 8: registers capped for that occupancy; 0 = uncapped
    bool compact_index = false;      // 32-bit offsets, layout fixed at compile time (D 128/256)
    int pipelined = 0;               // > 0: software-pipelined rows, loads 1 or 2 rows ahead
    bool bulk_stores = false;        // tiles in shared memory, stored by cp.async.bulk (sm_90)
};

// Ceilings of the fused decode for benchmarks: out ([B, N, H, D] BF16 on a CUDA device) filled
// with zeros, nothing read or decoded. kStreamingStores: the default launch's grid and 16-byte
// streaming stores; kLinearStores: 16-byte streaming stores in memory order; kMemset:
// cudaMemsetAsync. The last two need a contiguous out. Throws where CUDA is not built in.
enum class DecodeWriteCeiling { kStreamingStores, kLinearStores, kMemset };
void write_decode_ceiling(const at::Tensor& out, DecodeWriteCeiling kind);

struct EncodeContext {
    KVRole role = KVRole::kKey;
    uint64_t seed = 0;                      // mixed with the codec's own seed
    const EncodedSpan* previous = nullptr;  // warm start source (same layer, same role)
};

class Codec {
  public:
    virtual ~Codec() = default;
    const CodecConfig& config() const { return config_; }

    // x: [B, H, N, D] floating, finite, N >= 1. Throws qvg::core::Error on bad input.
    EncodedSpan encode(const at::Tensor& x, const EncodeContext& context = {}) const;
    // [B, H, N, D] in the span's dtype (BF16 for real caches), on the span's device.
    at::Tensor decode(const EncodedSpan& span) const;
    // Decodes into out, a [B, N, H, D] view (the model's layout, e.g. a slice of the attention's
    // key buffer) of the span's dtype or float32 (the span's values widened), rotating by `rope`
    // (per-token angles of these N tokens) when given. On CUDA, QVG/RTN spans decode and rotate in
    // one fused kernel. `launch` picks the CUDA kernel's thread layout (benchmarks compare them;
    // null = default).
    void decode_into(const EncodedSpan& span, const at::Tensor& out,
                     const RopeAngles* rope = nullptr, const DecodeLaunch* launch = nullptr) const;
    // Decoded values in fp32 (no final rounding), for measurement.
    virtual at::Tensor decode_float(const EncodedSpan& span) const = 0;
    // Process-wide, for benchmarks that compare the two: decode_into takes the generic path on
    // ATen ops instead of the fused decode (CUDA or host). The same values either way. Set it
    // between runs, not while another thread decodes.
    static void set_generic_decode(bool generic);
    static bool generic_decode();

    // Removes the finest stages so that `keep` remain, re-quantizing the last residual so the
    // scalar codes absorb what the dropped codebooks held. Only QVG spans have stages.
    void drop_stages(EncodedSpan& span, int keep) const;

    // Bytes the formula of qvg.md predicts for one span of this shape.
    int64_t expected_bytes(int64_t batch, int64_t heads, int64_t tokens, int64_t dim,
                           KVRole role = KVRole::kKey) const;

    static std::unique_ptr<Codec> create(const CodecConfig& config);

  protected:
    // What encode_into measured, as device scalars (no synchronisation until encode() reads
    // them all at once).
    struct Telemetry {
        std::vector<at::Tensor> stage_residual_sq;  // ||R_s||^2 after each smoothing stage
        at::Tensor error_sq;  // ||X - decode(X)||^2 when the method computed it, else undefined
        at::Tensor input_sq;  // ||X||^2 when the method computed it (saves a pass over X)
    };
    explicit Codec(CodecConfig config) : config_(std::move(config)) {}
    // x: the span [B, H, N, D], contiguous, in its own floating dtype (a method widens it to
    // fp32 only where it needs to).
    virtual void encode_into(const at::Tensor& x, const EncodeContext& context, EncodedSpan& span,
                             Telemetry& telemetry) const = 0;
    CodecConfig config_;
};

// Checks a span input: rank 4, floating, finite, non-empty, D compatible with the config.
void validate_span_input(const at::Tensor& x, const CodecConfig& config);

}  // namespace qvg::core
