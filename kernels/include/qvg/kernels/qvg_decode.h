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
    const uint16_t* centroids[kMaxStages] = {};  // BF16 bits [B, H, C, D], or
    // FP8-E4M3 bits [B, H, C, D] (8-byte aligned): each stage has exactly one of the two. Every
    // E4M3 value is a BF16 value, so the decode is the same as from the widened codebook. The
    // shared_centroids launch takes BF16 codebooks only (FP8 ones run the default launch).
    const uint8_t* centroids_fp8[kMaxStages] = {};
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
    // `qvg kernel-bench --variants` times them side by side.
    // 8-channel parts per thread: 1, 2 or 4 (must divide dim / 8); 0 = the default layout, the
    // fastest measured on the H200 (docs/bench/2026-11-29-h200-kernels-10686c9.txt): without
    // RoPE 4 parts, interleaved (32 channels per thread, 62.3% of the copy bandwidth against
    // 55.2% for 2 parts), with RoPE 2 parts side by side (47.6% against 45.3%); where dim / 8
    // does not divide, 2 then 1 part. interleaved_parts is ignored for the default. With the
    // other fields at their defaults, the default runs as compact_index below where that fits.
    int parts_per_thread = 0;
    // Cache-streaming stores (st.global.cs: evict first; the decoded span is read once).
    bool streaming_stores = true;
    // A thread's parts lie dim / parts channels apart instead of side by side, so that each
    // store (and centroid load) instruction of a warp covers whole 128-byte lines.
    bool interleaved_parts = false;
    // Flat grid (rows_per_thread > 0): the (b, h, n) rows of all heads in one index, so no head
    // leaves a partial block; each thread decodes rows_per_thread rows (1, 2 or 4; 4 only
    // without RoPE, else 2), issuing every load of all its rows before the first store (more
    // bytes in flight per thread). Needs 4 parts per row (dim % 32 == 0, dim / 32 dividing 256;
    // parts_per_thread 4, or 0 without RoPE) and fewer than 2^31 rows; else the per-head grid
    // runs. Ignores shared_centroids. 0 = the per-head grid.
    int rows_per_thread = 0;
    // Flat grid only: as many blocks as are resident at once (SMs x occupancy), looping over
    // the rows (grid-stride): no tail wave and no block launch per 256 rows.
    bool persistent = false;
    // Each block copies its head's codebooks into shared memory once and then loops over many
    // tokens: the centroid read that depends on the id load hits shared memory instead of
    // L1/L2. Ignored (the plain grid runs) without stages or where the codebooks do not fit.
    bool shared_centroids = false;
    // Conversions in fewer instructions, same bits: codes to float by the 2^23 magic number
    // (an OR and an add on the FP32 pipe instead of an I2F each) and two channels per BF16
    // rounding (cvt.rn.bf16x2.f32). Honoured by the per-head grid with 2 or 4 parts and
    // streaming stores, and by the pipelined and bulk-store kernels; ignored elsewhere.
    bool lean_math = false;
    // Registers of the per-head grid with 4 parts and streaming stores capped (launch bounds)
    // so that this many blocks of 256 threads are resident per SM: 6 or 8 (uncapped: 48
    // registers, 5 blocks at INT2 S1). More rows in flight, possibly spilled registers.
    // Ignored by other shapes and values. 0 = uncapped.
    int blocks_per_sm = 0;
    // The compact kernel: interleaved parts (4 per thread, 2 with RoPE), streaming stores,
    // dim 128 or 256 with 32-bit offsets, the group (a power of two) as a shift and the layout
    // fixed at compile time, and a fused multiply-add per channel (same bits, qvg_decode.cu
    // says why): fewer instructions per channel (the generic kernel is bound by instruction
    // issue). Ignored with bulk_stores or pipelined, and where dim, group or an offset of 2^32
    // elements or more does not fit (the generic launch runs). Ignores lean_math and the
    // layout fields.
    bool compact_index = false;
    // Software-pipelined flat grid (pipelined > 0): persistent blocks, 32 interleaved channels
    // per thread, streaming stores, a thread's rows loaded ahead of their computation so that
    // the id -> centroid dependence is not waited for row by row. 1: ids, codes and scales one
    // row ahead (the centroid loads go out as the previous row is stored); 2: centroids one row
    // ahead and ids, codes and scales two rows ahead (more registers, fewer resident blocks).
    // Needs dim % 32 == 0, dim / 32 dividing 256 and fewer than 2^31 rows; else the default
    // launch runs. Ignores the other layout fields. 0 = off.
    int pipelined = 0;
    // Hopper bulk stores (sm_90): a persistent block decodes a tile of consecutive output rows
    // (16 KiB; rows ordered as the output is laid out, all heads of a token side by side for
    // [B, N, H, D]) into shared memory, and one thread copies each contiguous run of the tile
    // to global memory with cp.async.bulk (one copy per tile when the output is packed; per
    // head or per row for other strides); two tiles alternate so the copy of one overlaps the
    // decode of the next. With streaming_stores the copies carry an L2 evict-first policy.
    // Takes precedence over pipelined and the layout fields; needs fewer than 2^31 rows and
    // dim <= 8192, else the default launch runs.
    bool bulk_stores = false;
};

// Returns an empty string when the parameters are usable, else what is wrong.
const char* validate(const QvgDecodeParams& p);

// CPU reference (bit-exact with the CUDA kernel and with qvg::core's codec).
void qvg_decode_reference(const QvgDecodeParams& p);

// The decode for CPU models: the reference's bits, fast (lookup tables for the codes and FP8
// values, loops the compiler vectorizes; one thread). Writes BF16 bits to p.out; or, with
// out_f32 given, float32 there (at p's output strides, p.out unused), as a float32 model reads
// BF16-held history: the decoded BF16 values widened, or with RoPE their rotation in fp32 not
// rounded to BF16 (what core::WanRope::apply_into writes into a float32 output).
// first, last: the (batch, head) pairs b * heads + h to decode (last < 0: to the end), so that
// threads can share a span; each pair's output is written by its caller alone.
void qvg_decode_host(const QvgDecodeParams& p, float* out_f32 = nullptr, int64_t first = 0,
                     int64_t last = -1);

// INT4 codebooks widened to BF16 for the decode, in one pass: entry e of a row is
// bf16_rne(float(u) * fp8(scale) + fp8(zero)) (multiply, then add, each rounded in fp32), u its
// 4-bit code (the high nibble of a byte first), one FP8-E4M3 scale and zero per row: what
// qvg::core::centroids_bf16 gives.
struct Int4CodebookParams {
    const uint8_t* codes = nullptr;   // [rows, dim / 2]
    const uint8_t* scales = nullptr;  // [rows] FP8-E4M3 bits
    const uint8_t* zeros = nullptr;   // [rows] FP8-E4M3 bits
    uint16_t* out = nullptr;          // BF16 bits [rows, dim]
    int64_t rows = 0, dim = 0;        // dim even
};
void widen_int4_codebook_reference(const Int4CodebookParams& p);

}  // namespace qvg::kernels
