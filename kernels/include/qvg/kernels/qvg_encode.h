#pragma once
// QVG span encode building blocks (CPU references here, CUDA launchers in qvg_encode_cuda.h):
//
// 1. k-means centroid update with a deterministic reduction: the members of each cluster,
//    listed in token order (a stable sort of the ids), are summed sequentially in fp32 - the
//    same order and rounding as the CPU codec's index_add - then divided by their count.
//    Empty clusters keep their previous centroid. Output BF16.
// 2. Fused residual + FP8-scaled group quantization + packing: r = bf16(x - c[id]) (or r = x
//    without a stage), per group of G channels the FP8-E4M3 scale (saturating RNE of
//    amax * fp32(1/qmax), floored at 1e-10), codes clamp(round_half_away(r / s)), the packed
//    bytes, and per token the sums of r^2 and of (x - x_hat)^2 where x_hat is the BF16 decode
//    of that token, for the error telemetry.

#include <cstdint>

namespace qvg::kernels {

struct KMeansUpdateParams {
    const float* x = nullptr;        // [G, N, D]
    const int64_t* order = nullptr;  // [G, N] token indices grouped by cluster, token order inside
    const int64_t* offsets = nullptr;  // [G, C + 1] start of each cluster's run in `order`
    const uint16_t* old = nullptr;     // BF16 [G, C, D]
    uint16_t* out = nullptr;           // BF16 [G, C, D]
    int64_t groups = 0, tokens = 0, centroids = 0, dim = 0;
};

struct ResidualQuantParams {
    const float* x = nullptr;             // [G, N, D] values (bf16-representable)
    const uint8_t* ids = nullptr;         // [G, N], or null for no stage
    const uint16_t* centroids = nullptr;  // BF16 [G, C, D], or null
    int64_t groups = 0, tokens = 0, dim = 0, num_centroids = 0;
    int bits = 2;
    int group = 64;
    bool asymmetric = false;
    uint8_t* codes = nullptr;      // [G, N, D * bits / 8]
    uint8_t* scales = nullptr;     // [G, N, D / group] FP8-E4M3 bits
    uint8_t* zeros = nullptr;      // [G, N, D / group], asymmetric only
    float* residual_sq = nullptr;  // [G, N] sum over d of r^2 (may be null)
    float* error_sq = nullptr;     // [G, N] sum over d of (x - x_hat)^2 (may be null)
};

// 3. Nearest centroid from precomputed dot products: score = fp32(cn[c] + (-2 * dot[n, c]))
//    (the CPU codec's baddbmm rounding), argmin over c with ties to the lowest index, and the
//    squared distance max(best + x_norm2[n], 0). One read of the dot matrix, no score matrix.
struct ArgminParams {
    const float* dot = nullptr;     // [G, N, C]
    const float* cnorm2 = nullptr;  // [G, C]  ||c||^2
    const float* xnorm2 = nullptr;  // [G, N]  ||x||^2
    int64_t* ids = nullptr;         // [G, N]
    float* dist = nullptr;          // [G, N]
    int64_t groups = 0, tokens = 0, centroids = 0;
};

void kmeans_update_reference(const KMeansUpdateParams& p);
void argmin_reference(const ArgminParams& p);
void residual_quant_reference(const ResidualQuantParams& p);

}  // namespace qvg::kernels
