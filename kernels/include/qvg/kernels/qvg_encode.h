#pragma once
// QVG span encode building blocks (CPU references here, CUDA launchers in qvg_encode_cuda.h):
//
// 1. k-means centroid update with a deterministic reduction: the members of each cluster are
//    summed sequentially in token order in fp32 - the same order and rounding as the CPU
//    codec's index_add - then divided by their count. The
//    tokens are read as BF16: the codec's k-means inputs are always BF16 values (the span
//    itself, or residuals rounded to BF16), so this halves the bytes without changing a bit.
//    Empty clusters keep their previous centroid. Output BF16.
// 2. Fused residual + FP8-scaled group quantization + packing: r = bf16(x - c[id]) (or r = x
//    without a stage), per group of G channels the FP8-E4M3 scale (saturating RNE of
//    amax * fp32(1/qmax), floored at 1e-10), codes clamp(round_half_away(r / s)), the packed
//    bytes, and per token the sums of r^2, of (x - x_hat)^2 where x_hat is the BF16 decode
//    of that token, and of x^2, for the error telemetry.

#include <cstdint>

namespace qvg::kernels {

// The range search (ResidualQuantParams::clip_search, and the CPU codec's
// GroupQuantSpec::clip_search): min-max, then ranges narrowed by kClipStep at a time,
// kClipSteps times (down to 40%).
inline constexpr int kClipSteps = 12;
inline constexpr float kClipStep = 0.05f;

struct KMeansUpdateParams {
    const uint16_t* x = nullptr;    // BF16 [G, N, D]
    const uint8_t* ids = nullptr;   // [G, N] cluster of every token
    const uint16_t* old = nullptr;  // BF16 [G, C, D]
    uint16_t* out = nullptr;        // BF16 [G, C, D]; may be old itself (updated in place)
    int32_t* counts = nullptr;      // [G, C] members of every cluster (may be null)
    int64_t groups = 0, tokens = 0, centroids = 0, dim = 0;
    // CUDA only (same bits either way): the previous kernel, one warp per cluster adding each
    // member as its ballot finds it (about one row load in flight per warp), for benchmarks.
    bool legacy = false;
};

struct ResidualQuantParams {
    const float* x = nullptr;             // [G, N, D] fp32 values, or
    const uint16_t* x_bf16 = nullptr;     // [G, N, D] BF16 (exactly one of the two is set)
    const uint8_t* ids = nullptr;         // [G, N], or null for no stage
    const uint16_t* centroids = nullptr;  // BF16 [G, C, D], or null
    int64_t groups = 0, tokens = 0, dim = 0, num_centroids = 0;
    int bits = 2;
    int group = 64;
    bool asymmetric = false;
    // Per group the range of least squared error between r and its decode among min-max and
    // min-max narrowed in 5% steps to 40% (about the middle when asymmetric, about 0 when
    // symmetric), the first on ties: the CPU codec's clip_search. The error of each range is
    // summed per 8 channels in order, then pairwise (xor butterfly) over the group's runs.
    bool clip_search = false;
    uint8_t* codes = nullptr;      // [G, N, D * bits / 8]
    uint8_t* scales = nullptr;     // [G, N, D / group] FP8-E4M3 bits
    uint8_t* zeros = nullptr;      // [G, N, D / group], asymmetric only
    float* residual_sq = nullptr;  // [G, N] sum over d of r^2 (may be null)
    float* error_sq = nullptr;     // [G, N] sum over d of (x - x_hat)^2 (may be null)
    float* input_sq = nullptr;     // [G, N] sum over d of x^2 (may be null): ||X|| for free
};

// 3. Nearest centroid, distances on tensor cores with the argmin fused (no [N, C] matrix):
//    dot[n, c] = sum_d x[n, d] * c[c, d] (BF16 products, fp32 accumulation; the tensor cores'
//    summation order, so equal to the sequential fp32 sum whenever every partial sum is exact),
//    ||c||^2 and ||x||^2 in fp32 in a warp's order (32 lane sums of the pairs at 2l + 64j, then
//    a xor butterfly; dim a multiple of 64), score = fp32(||c||^2 + (-2 * dot))
//    (the CPU codec's baddbmm rounding), argmin over c with ties to the lowest index, and the
//    squared distance max(best + ||x||^2, 0).
struct AssignParams {
    const uint16_t* x = nullptr;          // BF16 [G, N, D]
    const uint16_t* centroids = nullptr;  // BF16 [G, C, D]
    int64_t* ids = nullptr;               // [G, N], or
    uint8_t* ids_u8 = nullptr;            // [G, N] (exactly one of the two is set)
    float* dist = nullptr;                // [G, N], or null
    int64_t groups = 0, tokens = 0, num_centroids = 0, dim = 0;
    // CUDA only (same bits either way): the previous kernel, one block per 128 tokens that loads
    // and normalises the whole codebook for them, for benchmarks.
    bool legacy = false;
};

// 4. k-means initialisation: the C centroids of group g are distinct tokens drawn with Floyd's
//    algorithm from Xoshiro256(mix_seed(seed, g)) (qvg/kernels/rng.h), in draw order - exactly
//    the draws of qvg::core::Rng::distinct(N, C) - copied from x. Replaces a host-side draw,
//    an upload that synchronises and a gather.
struct KMeansInitParams {
    const uint16_t* x = nullptr;    // BF16 [G, N, D]
    uint16_t* centroids = nullptr;  // BF16 [G, C, D]
    int64_t groups = 0, tokens = 0, num_centroids = 0, dim = 0;
    uint64_t seed = 0;
    // > 0: group g draws from the stream of group g % seed_period (groups that come in items of
    // seed_period, e.g. the heads of each walk of a batch, draw as each item alone would).
    int64_t seed_period = 0;
    // CUDA only (same tokens either way): the previous, fully sequential collision check of
    // Floyd's draws, for benchmarks.
    bool legacy = false;
};

// 5. Empty clusters after an update take over the tokens farthest from their centroids: the
//    k-th empty cluster of a group (ascending index) gets the k-th farthest token (squared
//    distance descending, ties to the lower token index, as a stable sort orders them), as
//    qvg::core::kmeans_reseed_empty does. In place; decided on the device (no host round trip);
//    a group without empty clusters costs one read of its counts.
struct KMeansReseedParams {
    const uint16_t* x = nullptr;      // BF16 [G, N, D]
    const int32_t* counts = nullptr;  // [G, C] members per cluster (KMeansUpdateParams::counts)
    const float* dist = nullptr;      // [G, N] squared distance to the assigned centroid (>= 0)
    uint16_t* centroids = nullptr;    // BF16 [G, C, D], rows of empty clusters replaced
    int64_t groups = 0, tokens = 0, num_centroids = 0, dim = 0;
};

void kmeans_update_reference(const KMeansUpdateParams& p);
void assign_reference(const AssignParams& p);
void residual_quant_reference(const ResidualQuantParams& p);
// residual_quant_reference's bits, fast (the range search's candidates quantized in vectorized
// loops), for rows [first, last) of the groups * tokens rows (last < 0: to the end), so that
// threads can share a span. Takes what residual_quant_host_takes accepts: one of x and x_bf16,
// INT2 or INT4, groups of 8 to 256 channels in a power of two of runs of 8, dividing dim.
bool residual_quant_host_takes(const ResidualQuantParams& p);
void residual_quant_host(const ResidualQuantParams& p, int64_t first = 0, int64_t last = -1);
void kmeans_init_reference(const KMeansInitParams& p);
void kmeans_reseed_reference(const KMeansReseedParams& p);

}  // namespace qvg::kernels
