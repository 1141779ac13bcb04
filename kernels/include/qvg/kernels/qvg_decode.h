#pragma once
// QVG span decode: unpack the INT2/INT4 codes, scale by the FP8-E4M3 group scales (plus the
// zero point when asymmetric), add every stage's centroid, and emit BF16 - one pass, no Torch.
//
//   y[b,h,n,d] = bf16( q * s  (+ z)  + c_1[id_1] + ... + c_S[id_S] )   accumulated in fp32,
//   products and sums rounded separately (no FMA), exactly as the CPU codec computes them.
//
// The output is strided so a span can land directly in the model's [B, L, H, D] history
// buffer (no transpose, no concatenation).

#include <cstdint>

namespace qvg::kernels {

inline constexpr int kMaxStages = 4;

struct QvgDecodeParams {
    // Inputs, row-major, rows ordered (b, h, n).
    const uint8_t* codes = nullptr;   // [B, H, N, D * bits / 8]
    const uint8_t* scales = nullptr;  // [B, H, N, D / group] FP8-E4M3 bits
    const uint8_t* zeros = nullptr;   // [B, H, N, D / group] FP8-E4M3 bits, asymmetric only
    int num_stages = 0;
    const uint8_t* ids[kMaxStages] = {};         // [B, H, N]
    const uint16_t* centroids[kMaxStages] = {};  // BF16 bits [B, H, C, D]
    int64_t batch = 0, heads = 0, tokens = 0, dim = 0;
    int64_t num_centroids = 0;
    int bits = 2;
    int group = 64;
    bool asymmetric = false;
    // Optional RoPE of the decoded keys (both null: none): per-token fp32 [tokens, dim / 2] tables.
    // The BF16 decode is rotated exactly as kernels/rope.h rotates BF16 input, so decoding then
    // rotating and this fused pass give the same bits.
    const float* rope_cos = nullptr;
    const float* rope_sin = nullptr;
    // Output BF16 bits; element (b, h, n, d) at out[b*out_stride_b + n*out_stride_n +
    // h*out_stride_h + d].
    uint16_t* out = nullptr;
    int64_t out_stride_b = 0, out_stride_n = 0, out_stride_h = 0;
    // CUDA launch shape (the CPU reference ignores it; the bits are the same for every choice).
    // The defaults are the fastest measured on the H200 (16 channels per thread, streaming
    // stores: docs/bench/2026-11-29-h200-kernels-9963b45.txt); `qvg kernel-bench --variants`
    // times the others.
    // 8-channel parts per thread: 1, 2 or 4 (must divide dim / 8); 0 = 2 where it divides
    // dim / 8, else 1.
    int parts_per_thread = 0;
    // Cache-streaming stores (st.global.cs: evict first; the decoded span is read once).
    bool streaming_stores = true;
    // A thread's parts lie dim / parts channels apart instead of side by side, so that each
    // store (and centroid load) instruction of a warp covers whole 128-byte lines.
    bool interleaved_parts = false;
    // Each block copies its head's codebooks into shared memory once and then loops over many
    // tokens: the centroid read that depends on the id load hits shared memory instead of
    // L1/L2. Ignored (the plain grid runs) without stages or where the codebooks do not fit.
    bool shared_centroids = false;
};

// Returns an empty string when the parameters are usable, else what is wrong.
const char* validate(const QvgDecodeParams& p);

// CPU reference (bit-exact with the CUDA kernel and with qvg::core's codec).
void qvg_decode_reference(const QvgDecodeParams& p);

}  // namespace qvg::kernels
