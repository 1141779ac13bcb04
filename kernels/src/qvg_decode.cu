// QVG span decode on the GPU.
//
// Design: the decode is pure bandwidth (a span of K for one layer reads ~16 MB of codes, scales,
// ids and codebooks and writes ~115 MB of BF16), so each thread produces 8 consecutive channels
// of a token with one 16-byte store, after loading 2 (INT2) or 4 (INT4) code bytes, one scale
// byte and one 16-byte slice of each stage's centroid row; a grid row per (b, h). Launch
// variants (QvgDecodeParams::parts_per_thread, streaming_stores, interleaved_parts,
// shared_centroids, rows_per_thread, persistent, lean_math, pipelined, bulk_stores) are timed side
// by side by `qvg kernel-bench
// --variants`; the default is the fastest measured (qvg_decode.h: 4 interleaved parts per
// thread with streaming stores, 2 side by side with RoPE). (A token-major layout, all heads of
// a token side by side, measured 20% slower on the H200 and was dropped.)
//
// Why the variants: the bytes read are few (2-bit codes), so the kernel lives on its writes and
// on latency. (1) Adjacent parts: store instruction j of a warp writes 16 bytes every 16 * parts
// bytes, so a 128-byte line is completed by `parts` instructions; interleaved parts (dim / parts
// apart) make every store and centroid load instruction cover whole lines, and in shared
// memory they are free of bank conflicts (adjacent parts of 2 are 2-way conflicted). (2) Each
// row needs two dependent loads (id, then its centroid row from L1/L2); with shared_centroids
// the second is a shared-memory read, at the price of one copy of the head's codebooks (64 KiB
// at S1, D 128) per block, amortised by blocks that loop over ~1000 tokens each.
// (3) lean_math: per 8 channels the default spends 8 I2F and 8 F2F.BF16 conversions, which
// issue at a fraction of the FP32 rate; the 2^23 magic number and cvt.rn.bf16x2.f32 give the
// same bits on the FP32 pipe and with half the roundings. (4) pipelined: the id of a row is
// loaded one or two rows before its centroids are needed, so no row waits for id and centroid
// one after the other; blocks_per_sm instead caps the registers of the default launch so
// that more rows are in flight per SM (6 or 8 blocks of 256 against 5). (5) bulk_stores: Hopper's
// bulk copy engine writes whole 16 KiB tiles assembled in shared memory (cp.async.bulk, one
// instruction per contiguous run instead of 1024 16-byte stores). qvg_decode_write_ceiling writes
// the same bytes without decoding: the bound any of these can approach.
// What the H200 said (docs/bench/2026-11-29-h200-kernels-2081c95.txt and the Nsight Compute
// reports beside it): none of (3)-(5) nor more resident blocks helped, because the kernel was
// bound by instruction issue, not by memory (0.76 warp instructions per cycle and scheduler,
// DRAM 45% busy): divisions per part, 64-bit offsets and layout choices made at run time.
// The default without RoPE is therefore decode_compact_kernel (32-bit offsets, the layout
// fixed at compile time, a fused multiply-add per channel): 0.040 ms for INT2 G64 S1, 77% of
// the copy bandwidth (83% back to back), against 68.6% for the generic kernel's best launch.
// Arithmetic gives the CPU codec's bits: decode_row mirrors it operation for operation
// (__fmul_rn/__fadd_rn: no FMA contraction), decode_row says why its fused path is exact.
// Offsets are 64-bit except in the compact kernel (launched only where they fit 32 bits).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "qvg/kernels/qvg_decode_cuda.h"

namespace qvg::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;

__device__ __forceinline__ float fp8_e4m3_to_float(uint8_t bits) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(bits), __NV_E4M3);
    return __half2float(__half(h));
}

__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits16) {
    return __uint_as_float(bits16 << 16);
}

// x / d and x % d for a divisor d that is the same in every thread: a shift and a mask when d
// is a power of two (every group and every dim / 32 the codec uses), else a division. A 32-bit
// division costs about 20 instructions (64-bit ones a call); the decode is bound by instruction
// issue (Nsight Compute at 4db12a9: 0.76 warp instructions per cycle and scheduler, DRAM 45%),
// so the divisions a thread made per part were a large share of its work.
__device__ __forceinline__ unsigned uniform_div(unsigned x, unsigned d) {
    return (d & (d - 1)) == 0 ? x >> (__ffs(static_cast<int>(d)) - 1) : x / d;
}

// What one thread needs from memory for 8 channels of one (b, h, n) row, for spans of at most
// kStages stages (registers are sized by it: 1 covers RTN and S1, the common case).
template <int kStages>
struct RowLoads {
    uint32_t codes = 0;  // 2 (INT2) or 4 (INT4) code bytes
    uint8_t scale = 0, zero = 0;
    uint4 cent[kStages];
    float4 cos, sin;
};

// The loads of one part that do not depend on a stage id: codes, scale (and zero point).
template <int kBits, bool kAsym, int kStages>
__device__ __forceinline__ void load_codes(const QvgDecodeParams& p, int64_t row, int64_t d0,
                                           RowLoads<kStages>& l) {
    if constexpr (kBits == 2) {
        l.codes =
            __ldg(reinterpret_cast<const uint16_t*>(p.codes + row * (p.dim >> 2) + (d0 >> 2)));
    } else {
        l.codes =
            __ldg(reinterpret_cast<const uint32_t*>(p.codes + row * (p.dim >> 1) + (d0 >> 1)));
    }
    const unsigned group = static_cast<unsigned>(p.group);  // divides dim
    const int64_t g = row * uniform_div(static_cast<unsigned>(p.dim), group) +
                      uniform_div(static_cast<unsigned>(d0), group);
    l.scale = __ldg(p.scales + g);
    if constexpr (kAsym) l.zero = __ldg(p.zeros + g);
}

// 8 FP8-E4M3 centroid values (lowest address first) as 8 BF16 in the layout of a 16-byte BF16
// load: exact, since every E4M3 value is a BF16 value (through half and float, no rounding).
__device__ __forceinline__ uint4 widen_fp8x8(uint2 v) {
    const uint32_t w[2] = {v.x, v.y};
    uint32_t out[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const auto pair =
            static_cast<__nv_fp8x2_storage_t>((w[i >> 1] >> (16 * (i & 1))) & 0xffffu);
        const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
        out[i] = (__float_as_uint(f.x) >> 16) | (__float_as_uint(f.y) & 0xffff0000u);
    }
    return make_uint4(out[0], out[1], out[2], out[3]);
}

// 8 channels of centroid `row_elem / dim` of stage st from global memory, BF16 or FP8.
__device__ __forceinline__ uint4 load_centroid8(const QvgDecodeParams& p, int st, int64_t elem) {
    if (p.centroids_fp8[st] != nullptr)
        return widen_fp8x8(__ldg(reinterpret_cast<const uint2*>(p.centroids_fp8[st] + elem)));
    return __ldg(reinterpret_cast<const uint4*>(p.centroids[st] + elem));
}

// Stage st's centroid slice of one part, given the row's id. table: the head's codebooks in
// shared memory ([stage][C][D]), or null to read them from global memory.
template <int kStages>
__device__ __forceinline__ void load_centroid(const QvgDecodeParams& p, int64_t bh, int st, int id,
                                              int64_t d0, RowLoads<kStages>& l,
                                              const uint16_t* table) {
    if (table != nullptr) {
        l.cent[st] =
            *reinterpret_cast<const uint4*>(table + (st * p.num_centroids + id) * p.dim + d0);
    } else {
        l.cent[st] = load_centroid8(p, st, (bh * p.num_centroids + id) * p.dim + d0);
    }
}

template <int kStages>
__device__ __forceinline__ void load_rope(const QvgDecodeParams& p, int64_t n, int64_t d0,
                                          RowLoads<kStages>& l) {
    l.cos = __ldg(reinterpret_cast<const float4*>(p.rope_cos + n * (p.dim / 2) + d0 / 2));
    l.sin = __ldg(reinterpret_cast<const float4*>(p.rope_sin + n * (p.dim / 2) + d0 / 2));
}

// Everything one part of row (bh, n) needs, the id of each stage and then its centroid slice.
template <int kBits, bool kAsym, int kStages, bool kRope>
__device__ __forceinline__ void load_row(const QvgDecodeParams& p, int64_t bh, int64_t n,
                                         int64_t d0, RowLoads<kStages>& l,
                                         const uint16_t* table = nullptr) {
    const int64_t row = bh * p.tokens + n;
    load_codes<kBits, kAsym>(p, row, d0, l);
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
        if (st < p.num_stages) load_centroid(p, bh, st, __ldg(p.ids[st] + row), d0, l, table);
    }
    if constexpr (kRope) load_rope(p, n, d0, l);
}

// Stored code u minus the offset as a float, exactly. Lean: 2^23 + u built by its bits and
// 2^23 + offset subtracted (exact: both are integers below 2^24), on the FP32 pipe.
template <bool kLean, int kOffset>
__device__ __forceinline__ float code_value(int u) {
    if constexpr (kLean) {
        constexpr float kBias = 8388608.0f + static_cast<float>(kOffset);  // 2^23 + offset
        return __fsub_rn(__uint_as_float(0x4b000000u | static_cast<uint32_t>(u)), kBias);
    } else {
        return static_cast<float>(u - kOffset);
    }
}

// Two channels rounded to BF16 and packed (first channel in the low half). Lean: one
// cvt.rn.bf16x2.f32 for both.
template <bool kLean>
__device__ __forceinline__ uint32_t pack_bf16x2(float lo_value, float hi_value) {
    if constexpr (kLean) {
        const __nv_bfloat162 v = __floats2bfloat162_rn(lo_value, hi_value);
        uint32_t bits;
        memcpy(&bits, &v, 4);
        return bits;
    } else {
        const __nv_bfloat16 lo = __float2bfloat16_rn(lo_value);
        const __nv_bfloat16 hi = __float2bfloat16_rn(hi_value);
        uint16_t lo_bits, hi_bits;
        memcpy(&lo_bits, &lo, 2);
        memcpy(&hi_bits, &hi, 2);
        return static_cast<uint32_t>(lo_bits) | (static_cast<uint32_t>(hi_bits) << 16);
    }
}

// Rounds the decode to BF16 first, then rotates the 4 channel pairs as the RoPE kernel
// rotates BF16 keys.
template <int kStages>
__device__ __forceinline__ void rotate_bf16(const RowLoads<kStages>& l, float (&y)[kVec]) {
    const float cs[4] = {l.cos.x, l.cos.y, l.cos.z, l.cos.w};
    const float ss[4] = {l.sin.x, l.sin.y, l.sin.z, l.sin.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float re = __bfloat162float(__float2bfloat16_rn(y[2 * i]));
        const float im = __bfloat162float(__float2bfloat16_rn(y[2 * i + 1]));
        y[2 * i] = __fsub_rn(__fmul_rn(re, cs[i]), __fmul_rn(im, ss[i]));
        y[2 * i + 1] = __fadd_rn(__fmul_rn(re, ss[i]), __fmul_rn(im, cs[i]));
    }
}

// 8 BF16 channels, packed, from one row's loads.
// kFused: the same bits with fewer instructions, per channel a conversion, a fused
// multiply-add and one add per stage instead of a conversion, a multiply and two adds. Let u be
// the stored code, s and z the FP8 scale and zero point (4 significant bits), k the symmetric
// offset (1 for INT2, 7 for INT4). u * s and k * s are exact in FP32 (u, k < 16: at most 8
// significant bits), so are (u - k) * s and their sum, and fma(u, s, -(k * s)) rounds
// nothing: it is (u - k) * s, an exact zero coming out +0 as (q * s) + 0 does in the CPU
// codec. Asymmetric: fma(u, s, z) rounds u * s + z once, as the separate multiply (exact) and
// add do. The stage additions, the RoPE and the rounding to BF16 are shared.
template <int kBits, bool kAsym, int kStages, bool kRope, bool kLean = false, bool kFused = false>
__device__ __forceinline__ uint4 decode_row(const QvgDecodeParams& p, const RowLoads<kStages>& l) {
    // Codes of channels d0 .. d0+7: stored values u (offset, unsigned).
    int u[kVec];
    if constexpr (kBits == 2) {
        const uint32_t b0 = l.codes & 0xff, b1 = (l.codes >> 8) & 0xff;  // first byte low
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            u[i] = (b0 >> (6 - 2 * i)) & 3;
            u[4 + i] = (b1 >> (6 - 2 * i)) & 3;
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t byte = (l.codes >> (8 * i)) & 0xff;
            u[2 * i] = byte >> 4;
            u[2 * i + 1] = byte & 15;
        }
    }
    const float s = fp8_e4m3_to_float(l.scale);
    float y[kVec];
    if constexpr (kFused) {
        constexpr float kQmax = static_cast<float>((1 << (kBits - 1)) - 1);
        const float offset = kAsym ? fp8_e4m3_to_float(l.zero) : -__fmul_rn(kQmax, s);
#pragma unroll
        for (int i = 0; i < kVec; ++i) y[i] = __fmaf_rn(static_cast<float>(u[i]), s, offset);
    } else if constexpr (kAsym) {
        const float z = fp8_e4m3_to_float(l.zero);
#pragma unroll
        for (int i = 0; i < kVec; ++i)
            y[i] = __fadd_rn(__fmul_rn(code_value<kLean, 0>(u[i]), s), z);
    } else {
        constexpr int kQmax = (1 << (kBits - 1)) - 1;
#pragma unroll
        for (int i = 0; i < kVec; ++i) {
            y[i] = __fadd_rn(__fmul_rn(code_value<kLean, kQmax>(u[i]), s), 0.0f);
        }
    }
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
        if (st < p.num_stages) {
            const uint32_t w[4] = {l.cent[st].x, l.cent[st].y, l.cent[st].z, l.cent[st].w};
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                y[2 * i] = __fadd_rn(y[2 * i], bf16_bits_to_float(w[i] & 0xffff));
                y[2 * i + 1] = __fadd_rn(y[2 * i + 1], bf16_bits_to_float(w[i] >> 16));
            }
        }
    }
    if constexpr (kRope) rotate_bf16(l, y);
    uint32_t packed[4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
        packed[i] = pack_bf16x2 < kLean || kFused > (y[2 * i], y[2 * i + 1]);
    return make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

template <bool kStream>
__device__ __forceinline__ void store16(uint16_t* out, const uint4& v) {
    if constexpr (kStream) {
        __stcs(reinterpret_cast<uint4*>(out), v);
    } else {
        *reinterpret_cast<uint4*>(out) = v;
    }
}

// Where thread t of a row puts its kParts 8-channel parts: first channel and distance between
// parts (side by side, or dim / kParts apart).
template <int kParts>
__device__ __forceinline__ void part_layout(const QvgDecodeParams& p, unsigned t, int64_t& first,
                                            int64_t& step) {
    if (kParts > 1 && p.interleaved_parts) {
        first = static_cast<int64_t>(t) * kVec;
        step = p.dim >> (kParts == 4 ? 2 : 1);  // dim / kParts (dim > 0)
    } else {
        first = static_cast<int64_t>(t) * kVec * kParts;
        step = kVec;
    }
}

// One row: all loads first (independent requests in flight), then arithmetic and stores.
template <int kBits, bool kAsym, int kStages, bool kRope, int kParts, bool kStream,
          bool kLean = false>
__device__ __forceinline__ void decode_one_row(const QvgDecodeParams& p, int64_t b, int64_t h,
                                               int64_t n, unsigned t, const uint16_t* table) {
    const int64_t bh = b * p.heads + h;
    int64_t first, step;
    part_layout<kParts>(p, t, first, step);
    RowLoads<kStages> l[kParts];
#pragma unroll
    for (int j = 0; j < kParts; ++j)
        load_row<kBits, kAsym, kStages, kRope>(p, bh, n, first + j * step, l[j], table);
    uint16_t* out = p.out + b * p.out_stride_b + n * p.out_stride_n + h * p.out_stride_h + first;
#pragma unroll
    for (int j = 0; j < kParts; ++j)
        store16<kStream>(out + j * step, decode_row<kBits, kAsym, kStages, kRope, kLean>(p, l[j]));
}

// The per-head grid: grid (x, heads, batch), grid.x covering a head's tokens x (dim / (8 *
// kParts)) threads; this thread's row and part.
template <int kBits, bool kAsym, int kStages, bool kRope, int kParts, bool kStream, bool kLean>
__device__ __forceinline__ void decode_grid_row(const QvgDecodeParams& p) {
    const unsigned threads_per_row = static_cast<unsigned>(p.dim) / (kVec * kParts);
    const unsigned local = blockIdx.x * kThreads + threadIdx.x;
    const unsigned n32 = uniform_div(local, threads_per_row);
    if (n32 >= p.tokens) return;
    decode_one_row<kBits, kAsym, kStages, kRope, kParts, kStream, kLean>(
        p, blockIdx.z, blockIdx.y, n32, local - n32 * threads_per_row, nullptr);
}

// The per-head grid; with kStream the stores bypass the caches (st.global.cs: the decoded
// span is read once, by the attention, after much more data went through L2).
template <int kBits, bool kAsym, int kStages, bool kRope, int kParts, bool kStream,
          bool kLean = false>
__global__ void __launch_bounds__(kThreads) decode_kernel(QvgDecodeParams p) {
    decode_grid_row<kBits, kAsym, kStages, kRope, kParts, kStream, kLean>(p);
}

// decode_kernel with 4 parts and streaming stores, registers capped by the launch bounds so
// that kMinBlocks blocks of kThreads fit on an SM (QvgDecodeParams::blocks_per_sm): more rows
// in flight per SM when the time goes to waiting for loads (48 registers, 5 blocks, uncapped).
template <int kBits, bool kAsym, int kStages, bool kRope, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks) decode_capped_kernel(QvgDecodeParams p) {
    decode_grid_row<kBits, kAsym, kStages, kRope, 4, true, false>(p);
}

// Flat grid: row index r over all heads' (b, h, n) rows (bh = r / tokens), 4 parts of 8
// channels per thread, kRows rows per thread. A block's threads cover kThreads / (dim / 32)
// consecutive rows at a time and kRows of those layers per step, so every load and store
// instruction of a warp stays as coalesced as the per-head kernel's; all loads of the kRows
// rows are issued before the first store. Grid-stride: one step per block when the grid covers
// all rows, several when it is sized to the resident blocks (persistent).
template <int kBits, bool kAsym, int kStages, bool kRope, int kRows, bool kStream>
__global__ void __launch_bounds__(kThreads) decode_flat_kernel(QvgDecodeParams p) {
    constexpr int kParts = 4;
    const unsigned tpr = static_cast<unsigned>(p.dim / (kVec * kParts));  // divides kThreads
    const unsigned layer = kThreads / tpr;
    const unsigned t = threadIdx.x % tpr, r_in = threadIdx.x / tpr;
    const unsigned tokens = static_cast<unsigned>(p.tokens);
    const unsigned heads = static_cast<unsigned>(p.heads);
    const int64_t total = p.batch * p.heads * p.tokens;  // < 2^31 (checked at launch)
    const int64_t per_step = static_cast<int64_t>(layer) * kRows;
    int64_t first, step;
    part_layout<kParts>(p, t, first, step);
    for (int64_t row0 = static_cast<int64_t>(blockIdx.x) * per_step; row0 < total;
         row0 += static_cast<int64_t>(gridDim.x) * per_step) {
        RowLoads<kStages> l[kRows][kParts];
        unsigned bh[kRows], n[kRows];
        bool valid[kRows];
#pragma unroll
        for (int j = 0; j < kRows; ++j) {
            const int64_t row = row0 + j * static_cast<int64_t>(layer) + r_in;
            valid[j] = row < total;
            const unsigned r32 = valid[j] ? static_cast<unsigned>(row) : 0u;
            bh[j] = r32 / tokens;
            n[j] = r32 % tokens;
            if (valid[j]) {
#pragma unroll
                for (int k = 0; k < kParts; ++k)
                    load_row<kBits, kAsym, kStages, kRope>(p, bh[j], n[j], first + k * step,
                                                           l[j][k]);
            }
        }
#pragma unroll
        for (int j = 0; j < kRows; ++j) {
            if (!valid[j]) continue;
            const int64_t b = bh[j] / heads, h = bh[j] % heads;
            uint16_t* out = p.out + b * p.out_stride_b +
                            static_cast<int64_t>(n[j]) * p.out_stride_n + h * p.out_stride_h +
                            first;
#pragma unroll
            for (int k = 0; k < kParts; ++k)
                store16<kStream>(out + k * step,
                                 decode_row<kBits, kAsym, kStages, kRope>(p, l[j][k]));
        }
    }
}

// SMs x resident blocks of kKernel at kThreads threads and smem bytes of dynamic shared memory,
// looked up once per kernel and device (a cache per kernel: occupancies differ).
template <auto kKernel>
cudaError_t resident_blocks(int64_t& blocks, size_t smem = 0) {
    static int cached[16][2] = {};  // per device: blocks per SM, SMs (0: not looked up yet)
    int device = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err != cudaSuccess) return err;
    int per_sm = device < 16 ? cached[device][0] : 0, sms = device < 16 ? cached[device][1] : 0;
    if (per_sm == 0 || sms == 0) {
        if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kKernel, kThreads,
                                                                 smem)) != cudaSuccess ||
            (err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) !=
                cudaSuccess) {
            return err;
        }
        if (device < 16) {
            cached[device][0] = per_sm;
            cached[device][1] = sms;
        }
    }
    blocks = std::max<int64_t>(1, int64_t{per_sm} * sms);
    return cudaSuccess;
}

template <int kBits, bool kAsym, int kStages, bool kRope, int kRows, bool kStream>
cudaError_t launch_flat_rows(const QvgDecodeParams& p, cudaStream_t stream) {
    constexpr auto kernel = decode_flat_kernel<kBits, kAsym, kStages, kRope, kRows, kStream>;
    const int64_t total = p.batch * p.heads * p.tokens;
    const int64_t per_step = kThreads / (p.dim / (kVec * 4)) * kRows;
    int64_t blocks = (total + per_step - 1) / per_step;
    if (p.persistent) {
        int64_t resident = 0;
        const cudaError_t err = resident_blocks<kernel>(resident);
        if (err != cudaSuccess) return err;
        blocks = std::min(blocks, resident);
    }
    kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

template <int kBits, bool kAsym, int kStages, bool kRope, int kRows>
cudaError_t launch_flat_stream(const QvgDecodeParams& p, cudaStream_t stream) {
    return p.streaming_stores
               ? launch_flat_rows<kBits, kAsym, kStages, kRope, kRows, true>(p, stream)
               : launch_flat_rows<kBits, kAsym, kStages, kRope, kRows, false>(p, stream);
}

// Rows per thread as asked, within what the registers hold: 4 only for one stage without
// RoPE, 2 with RoPE, 1 with more than one stage.
template <int kBits, bool kAsym, int kStages, bool kRope>
cudaError_t launch_flat(const QvgDecodeParams& p, cudaStream_t stream) {
    if constexpr (kStages > 1) {
        return launch_flat_stream<kBits, kAsym, kStages, kRope, 1>(p, stream);
    } else {
        if (p.rows_per_thread <= 1)
            return launch_flat_stream<kBits, kAsym, kStages, kRope, 1>(p, stream);
        if constexpr (kRope) {
            return launch_flat_stream<kBits, kAsym, kStages, kRope, 2>(p, stream);
        } else {
            if (p.rows_per_thread == 2)
                return launch_flat_stream<kBits, kAsym, kStages, kRope, 2>(p, stream);
            return launch_flat_stream<kBits, kAsym, kStages, kRope, 4>(p, stream);
        }
    }
}

// shared_centroids: grid.y = b * heads + h; the block stages this head's codebooks in shared
// memory, then its rows of 256 / (dim / (8 * kParts)) threads stride over the head's tokens.
template <int kBits, bool kAsym, int kStages, bool kRope, int kParts, bool kStream>
__global__ void __launch_bounds__(kThreads) decode_shared_kernel(QvgDecodeParams p) {
    extern __shared__ __align__(16) unsigned char smem[];
    uint16_t* table = reinterpret_cast<uint16_t*>(smem);
    const int64_t bh = blockIdx.y;
    const int64_t b = blockIdx.y / static_cast<unsigned>(p.heads), h = bh - b * p.heads;
    const int64_t chunks = p.num_centroids * p.dim / kVec;  // 16-byte chunks per stage
    for (int st = 0; st < p.num_stages; ++st) {
        const uint4* src =
            reinterpret_cast<const uint4*>(p.centroids[st] + bh * p.num_centroids * p.dim);
        uint4* dst = reinterpret_cast<uint4*>(table) + st * chunks;
        for (int64_t i = threadIdx.x; i < chunks; i += kThreads) dst[i] = __ldg(src + i);
    }
    __syncthreads();
    const unsigned threads_per_row = static_cast<unsigned>(p.dim / (kVec * kParts));
    const unsigned rows = kThreads / threads_per_row;
    const unsigned r = threadIdx.x / threads_per_row;
    if (r >= rows) return;
    const unsigned t = threadIdx.x % threads_per_row;
    for (int64_t n = static_cast<int64_t>(blockIdx.x) * rows + r; n < p.tokens;
         n += static_cast<int64_t>(gridDim.x) * rows) {
        decode_one_row<kBits, kAsym, kStages, kRope, kParts, kStream>(p, b, h, n, t, table);
    }
}

template <int kBits, bool kAsym, int kStages, bool kRope, int kParts, bool kStream>
cudaError_t launch_shared(const QvgDecodeParams& p, size_t smem, cudaStream_t stream,
                          bool& launched) {
    launched = false;
    auto kernel = decode_shared_kernel<kBits, kAsym, kStages, kRope, kParts, kStream>;
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem));
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return cudaSuccess;  // more than the device offers: the plain grid runs
    }
    int per_sm = 0, device = 0, sms = 0;
    if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem)) !=
            cudaSuccess ||
        (err = cudaGetDevice(&device)) != cudaSuccess ||
        (err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) !=
            cudaSuccess) {
        return err;
    }
    if (per_sm == 0) return cudaSuccess;
    // One wave: as many blocks as fit at once, spread evenly over the heads.
    const int64_t heads = p.batch * p.heads;
    const int64_t rows = kThreads / (p.dim / (kVec * kParts));
    const int64_t most = (p.tokens + rows - 1) / rows;
    const int64_t per_head =
        std::max<int64_t>(1, std::min<int64_t>(most, (int64_t{per_sm} * sms + heads - 1) / heads));
    const dim3 grid(static_cast<unsigned>(per_head), static_cast<unsigned>(heads));
    kernel<<<grid, kThreads, smem, stream>>>(p);
    launched = true;
    return cudaGetLastError();
}

// Codebooks staged in shared memory only up to this size (4 stages at D 128 would take all of
// an H200 SM's 227 KiB for one block).
constexpr size_t kMaxSharedTable = 128 * 1024;

template <int kBits, bool kAsym, int kStages, bool kRope, int kParts>
cudaError_t launch_parts(const QvgDecodeParams& p, cudaStream_t stream) {
    if (p.batch * p.heads > 65535) return cudaErrorInvalidValue;
    if (p.shared_centroids && p.num_stages > 0 &&
        std::none_of(p.centroids_fp8, p.centroids_fp8 + p.num_stages,
                     [](const uint8_t* c) { return c != nullptr; })) {
        const size_t smem = static_cast<size_t>(p.num_stages * p.num_centroids * p.dim * 2);
        if (smem <= kMaxSharedTable) {
            bool launched = false;
            const cudaError_t err =
                p.streaming_stores ? launch_shared<kBits, kAsym, kStages, kRope, kParts, true>(
                                         p, smem, stream, launched)
                                   : launch_shared<kBits, kAsym, kStages, kRope, kParts, false>(
                                         p, smem, stream, launched);
            if (err != cudaSuccess || launched) return err;
        }
    }
    const int64_t per_head = p.tokens * (p.dim / (kVec * kParts));
    if (per_head > 0xffffffffLL - kThreads) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>((per_head + kThreads - 1) / kThreads),
                    static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
    if (p.streaming_stores) {
        if constexpr (kParts == 4) {
            if (p.blocks_per_sm == 6) {
                decode_capped_kernel<kBits, kAsym, kStages, kRope, 6>
                    <<<grid, kThreads, 0, stream>>>(p);
                return cudaGetLastError();
            }
            if (p.blocks_per_sm == 8) {
                decode_capped_kernel<kBits, kAsym, kStages, kRope, 8>
                    <<<grid, kThreads, 0, stream>>>(p);
                return cudaGetLastError();
            }
        }
        if constexpr (kParts > 1) {
            if (p.lean_math) {
                decode_kernel<kBits, kAsym, kStages, kRope, kParts, true, true>
                    <<<grid, kThreads, 0, stream>>>(p);
                return cudaGetLastError();
            }
        }
        decode_kernel<kBits, kAsym, kStages, kRope, kParts, true><<<grid, kThreads, 0, stream>>>(p);
    } else {
        decode_kernel<kBits, kAsym, kStages, kRope, kParts, false>
            <<<grid, kThreads, 0, stream>>>(p);
    }
    return cudaGetLastError();
}

// ---- Software-pipelined flat grid (QvgDecodeParams::pipelined) ----------------------------------

// A thread's loads for one row of the pipelined kernel: 4 interleaved parts and the row's ids.
template <int kStages>
struct PipeSlot {
    RowLoads<kStages> l[4];
    int id[kStages];
};

// The loads of row `row` that need no id: its ids, codes, scales (zeros, RoPE tables).
template <int kBits, bool kAsym, int kStages, bool kRope>
__device__ __forceinline__ void issue_direct(const QvgDecodeParams& p, unsigned row,
                                             unsigned tokens, int64_t first, int64_t step,
                                             PipeSlot<kStages>& s) {
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
        if (st < p.num_stages) s.id[st] = __ldg(p.ids[st] + row);
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        load_codes<kBits, kAsym>(p, row, first + j * step, s.l[j]);
        if constexpr (kRope) load_rope(p, row % tokens, first + j * step, s.l[j]);
    }
}

// The centroid slices of row `row`, once its ids are in.
template <int kStages>
__device__ __forceinline__ void issue_centroids(const QvgDecodeParams& p, unsigned row,
                                                unsigned tokens, int64_t first, int64_t step,
                                                PipeSlot<kStages>& s) {
    const int64_t bh = row / tokens;
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
        if (st < p.num_stages) {
#pragma unroll
            for (int j = 0; j < 4; ++j)
                load_centroid(p, bh, st, s.id[st], first + j * step, s.l[j], nullptr);
        }
    }
}

// Persistent flat grid over the (b, h, n) rows, dim / 32 threads per row with 4 interleaved
// parts each, rows gridDim.x * (kThreads / (dim / 32)) apart per thread, loads issued ahead of
// the row that uses them (software pipelining):
//   kDepth 1: the ids, codes and scales of row k + 1 are loaded while row k is computed and
//     stored; row k + 1's centroid loads go out right after (its ids have long arrived), so
//     only the centroid's L1/L2 latency is left to the row, never id then centroid in a row.
//   kDepth 2: while row k is computed and stored, the centroid loads of row k + 1 and the id,
//     code and scale loads of row k + 2 are in flight: every load has at least a whole
//     iteration to arrive.
// Registers (ptxas, sm_90, INT2 S1 without RoPE): about 99 at depth 1 and 128 at depth 2, so
// two blocks of 256 per SM against five for the default launch (48); capping depth 1 at 80
// (three blocks) spilled. Fewer threads, each with two or three rows in flight.
template <int kBits, bool kAsym, int kStages, bool kRope, bool kLean, int kDepth>
__global__ void __launch_bounds__(kThreads) decode_pipelined_kernel(QvgDecodeParams p) {
    const unsigned tpr = static_cast<unsigned>(p.dim / (kVec * 4));  // divides kThreads
    const unsigned layer = kThreads / tpr;
    const unsigned t = threadIdx.x % tpr;
    const unsigned tokens = static_cast<unsigned>(p.tokens);
    const unsigned heads = static_cast<unsigned>(p.heads);
    const int64_t total = p.batch * p.heads * p.tokens;  // < 2^31 (checked at launch)
    const int64_t stride = static_cast<int64_t>(gridDim.x) * layer;
    int64_t first, step;
    part_layout<4>(p, t, first, step);  // interleaved (set at launch)
    int64_t row = static_cast<int64_t>(blockIdx.x) * layer + threadIdx.x / tpr;
    if (row >= total) return;
    auto direct = [&](int64_t r, PipeSlot<kStages>& s) {
        issue_direct<kBits, kAsym, kStages, kRope>(p, static_cast<unsigned>(r), tokens, first, step,
                                                   s);
    };
    auto centroids = [&](int64_t r, PipeSlot<kStages>& s) {
        issue_centroids(p, static_cast<unsigned>(r), tokens, first, step, s);
    };
    auto store_row = [&](const PipeSlot<kStages>& x) {
        const unsigned r32 = static_cast<unsigned>(row);
        const unsigned bh = r32 / tokens, n = r32 % tokens;
        uint16_t* out = p.out + static_cast<int64_t>(bh / heads) * p.out_stride_b +
                        static_cast<int64_t>(n) * p.out_stride_n +
                        static_cast<int64_t>(bh % heads) * p.out_stride_h + first;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            store16<true>(out + j * step,
                          decode_row<kBits, kAsym, kStages, kRope, kLean>(p, x.l[j]));
        }
    };
    // The loop is unrolled by hand so that the slots trade roles instead of being copied (a
    // copy of a register a load is still filling would wait for the load).
    if constexpr (kDepth == 1) {
        PipeSlot<kStages> a, b;
        direct(row, a);
        centroids(row, a);
        if (row + stride < total) direct(row + stride, b);
        // x: this row (all loads issued), y: the next row (direct loads issued).
        auto step_row = [&](PipeSlot<kStages>& x, PipeSlot<kStages>& y) {
            store_row(x);
            if (row + stride >= total) return false;
            centroids(row + stride, y);
            if (row + 2 * stride < total) direct(row + 2 * stride, x);
            row += stride;
            return true;
        };
        while (step_row(a, b) && step_row(b, a)) {
        }
    } else {
        PipeSlot<kStages> a, b, c;
        direct(row, a);
        centroids(row, a);
        if (row + stride < total) direct(row + stride, b);
        // x: this row (all loads issued), y: the next (direct loads issued), z: free.
        auto step_row = [&](PipeSlot<kStages>& x, PipeSlot<kStages>& y, PipeSlot<kStages>& z) {
            if (row + stride < total) centroids(row + stride, y);
            if (row + 2 * stride < total) direct(row + 2 * stride, z);
            store_row(x);
            row += stride;
            return row < total;
        };
        while (step_row(a, b, c) && step_row(b, c, a) && step_row(c, a, b)) {
        }
    }
}

// Launched where the layout fits (4 parts of 8 channels, dim / 32 dividing kThreads, rows
// indexable in 31 bits); launched = false otherwise.
template <int kBits, bool kAsym, int kStages, bool kRope, bool kLean, int kDepth>
cudaError_t launch_pipelined_depth(const QvgDecodeParams& in, cudaStream_t stream, bool& launched) {
    constexpr auto kernel = decode_pipelined_kernel<kBits, kAsym, kStages, kRope, kLean, kDepth>;
    launched = false;
    const int64_t total = in.batch * in.heads * in.tokens;
    if (in.dim % (kVec * 4) != 0 || kThreads % (in.dim / (kVec * 4)) != 0 || total > 0x7fffffffLL) {
        return cudaSuccess;
    }
    QvgDecodeParams p = in;
    p.interleaved_parts = true;
    const int64_t layer = kThreads / (p.dim / (kVec * 4));
    int64_t blocks = 0;
    const cudaError_t err = resident_blocks<kernel>(blocks);
    if (err != cudaSuccess) return err;
    blocks = std::min(blocks, (total + layer - 1) / layer);
    kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    launched = true;
    return cudaGetLastError();
}

template <int kBits, bool kAsym, int kStages, bool kRope, bool kLean>
cudaError_t launch_pipelined_lean(const QvgDecodeParams& p, cudaStream_t stream, bool& launched) {
    return p.pipelined >= 2
               ? launch_pipelined_depth<kBits, kAsym, kStages, kRope, kLean, 2>(p, stream, launched)
               : launch_pipelined_depth<kBits, kAsym, kStages, kRope, kLean, 1>(p, stream,
                                                                                launched);
}

template <int kBits, bool kAsym, int kStages, bool kRope>
cudaError_t launch_pipelined(const QvgDecodeParams& p, cudaStream_t stream, bool& launched) {
    return p.lean_math
               ? launch_pipelined_lean<kBits, kAsym, kStages, kRope, true>(p, stream, launched)
               : launch_pipelined_lean<kBits, kAsym, kStages, kRope, false>(p, stream, launched);
}

// ---- Bulk (TMA) stores from shared memory (QvgDecodeParams::bulk_stores) -----------------------

constexpr int kBulkChunks = 4;                           // 16-byte chunks per thread and tile
constexpr int kTileBytes = kThreads * kBulkChunks * 16;  // one tile: 16 KiB of output

// How the output rows are walked: in the order they lie in memory, as far as the strides allow.
struct BulkLayout {
    bool token_major = true;  // rows ordered (b, n, h), else (b, h, n)
    unsigned run_rows = 1;    // rows [k * run_rows, (k + 1) * run_rows) are contiguous in memory
    unsigned tile_rows = 0;   // rows per tile (kTileBytes / row bytes)
};

// Row q of the walk as the (b, h, n) of the decode, and its output element offset.
__device__ __forceinline__ void bulk_row(const QvgDecodeParams& p, const BulkLayout& lay,
                                         unsigned q, unsigned& bh, unsigned& n, int64_t& out) {
    const unsigned heads = static_cast<unsigned>(p.heads), tokens = static_cast<unsigned>(p.tokens);
    const unsigned per_b = heads * tokens;
    const unsigned b = q / per_b, rem = q % per_b;
    unsigned h;
    if (lay.token_major) {
        n = rem / heads;
        h = rem % heads;
    } else {
        h = rem / tokens;
        n = rem % tokens;
    }
    bh = b * heads + h;
    out = static_cast<int64_t>(b) * p.out_stride_b + static_cast<int64_t>(n) * p.out_stride_n +
          static_cast<int64_t>(h) * p.out_stride_h;
}

// Shared-memory writes of this thread made visible to the async proxy (the bulk copy engine);
// every writer fences, then the block synchronises, then one thread issues the copies.
__device__ __forceinline__ void fence_proxy_async_shared() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// bytes (a multiple of 16) from shared memory address src (16-byte aligned) to global dst
// (16-byte aligned), in the current bulk group; with a cache policy when evict_first.
__device__ __forceinline__ void bulk_store(void* dst, uint32_t src, uint32_t bytes,
                                           bool evict_first, uint64_t policy) {
    if (evict_first) {
        asm volatile(
            "cp.async.bulk.global.shared::cta.bulk_group.L2::cache_hint [%0], [%1], %2, %3;" ::"l"(
                dst),
            "r"(src), "r"(bytes), "l"(policy)
            : "memory");
    } else {
        asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(dst),
                     "r"(src), "r"(bytes)
                     : "memory");
    }
}

// Persistent blocks walk tiles of tile_rows consecutive output rows (BulkLayout order), two
// shared-memory buffers alternating: thread c of the block decodes 16-byte chunks c, c + 256,
// ... of the tile (consecutive threads on consecutive bytes: no bank conflicts, and every warp
// load and store covers whole lines) into the buffer; after a fence and a barrier, thread 0
// copies the tile's contiguous runs with cp.async.bulk and commits them as one group. Before a
// buffer is refilled, thread 0 waits until the group that read it two tiles ago has finished
// reading (wait_group.read 1) and the barrier passes that on; at the end it waits for all
// groups to complete, so shared memory outlives the copies.
template <int kBits, bool kAsym, int kStages, bool kRope, bool kLean>
__global__ void __launch_bounds__(kThreads) decode_bulk_kernel(QvgDecodeParams p, BulkLayout lay) {
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned cpr = static_cast<unsigned>(p.dim / kVec);  // 16-byte chunks per row
    const unsigned row_bytes = cpr * 16;
    const unsigned total = static_cast<unsigned>(p.batch * p.heads * p.tokens);  // < 2^31
    const unsigned tiles = (total + lay.tile_rows - 1) / lay.tile_rows;
    uint64_t policy = 0;
    if (p.streaming_stores && threadIdx.x == 0)
        asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    unsigned buf = 0;
    for (unsigned tile = blockIdx.x; tile < tiles; tile += gridDim.x, buf ^= 1) {
        uint4* tile_smem = reinterpret_cast<uint4*>(smem + buf * kTileBytes);
        if (threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group.read 1;" ::: "memory");
        __syncthreads();
        const unsigned q0 = tile * lay.tile_rows;
        const unsigned rows = min(lay.tile_rows, total - q0);
        const unsigned chunks = rows * cpr;
        RowLoads<kStages> l[kBulkChunks];
#pragma unroll
        for (int j = 0; j < kBulkChunks; ++j) {
            const unsigned c = threadIdx.x + j * kThreads;
            if (c < chunks) {
                unsigned bh, n;
                int64_t out;
                bulk_row(p, lay, q0 + c / cpr, bh, n, out);
                load_row<kBits, kAsym, kStages, kRope>(p, bh, n, (c % cpr) * kVec, l[j]);
            }
        }
#pragma unroll
        for (int j = 0; j < kBulkChunks; ++j) {
            const unsigned c = threadIdx.x + j * kThreads;
            if (c < chunks) tile_smem[c] = decode_row<kBits, kAsym, kStages, kRope, kLean>(p, l[j]);
        }
        fence_proxy_async_shared();
        __syncthreads();
        if (threadIdx.x == 0) {
            const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(tile_smem));
            const unsigned end = q0 + rows;
            for (unsigned q = q0; q < end;) {
                const unsigned run_end = min(end, (q / lay.run_rows + 1) * lay.run_rows);
                unsigned bh, n;
                int64_t out;
                bulk_row(p, lay, q, bh, n, out);
                bulk_store(p.out + out, base + (q - q0) * row_bytes, (run_end - q) * row_bytes,
                           p.streaming_stores, policy);
                q = run_end;
            }
            asm volatile("cp.async.bulk.commit_group;" ::: "memory");
        }
    }
    if (threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

// Size 1 or the packed stride: the rows along this dimension follow each other in memory.
bool packed_dim(int64_t size, int64_t stride, int64_t expect) {
    return size <= 1 || stride == expect;
}

// Rows contiguous from one on, walking (b, outer, inner) with inner rows side by side (stride
// dim): the inner rows of one outer index, or all of a batch entry's, or all rows.
unsigned run_rows(int64_t dim, int64_t inner, int64_t outer, int64_t outer_stride, int64_t batch,
                  int64_t batch_stride) {
    if (!packed_dim(outer, outer_stride, inner * dim)) return static_cast<unsigned>(inner);
    const int64_t rows = outer * inner;
    return static_cast<unsigned>(packed_dim(batch, batch_stride, rows * dim) ? batch * rows : rows);
}

BulkLayout bulk_layout(const QvgDecodeParams& p) {
    BulkLayout lay;
    const int64_t d = p.dim, h = p.heads, n = p.tokens, b = p.batch;
    if (packed_dim(h, p.out_stride_h, d)) {  // heads of a token side by side ([B, N, H, D])
        lay.token_major = true;
        lay.run_rows = run_rows(d, h, n, p.out_stride_n, b, p.out_stride_b);
    } else if (packed_dim(n, p.out_stride_n, d)) {  // tokens of a head side by side
        lay.token_major = false;
        lay.run_rows = run_rows(d, n, h, p.out_stride_h, b, p.out_stride_b);
    } else {  // every row on its own
        lay.token_major = true;
        lay.run_rows = 1;
    }
    lay.tile_rows = static_cast<unsigned>(kTileBytes / (d * 2));
    return lay;
}

template <int kBits, bool kAsym, int kStages, bool kRope, bool kLean>
cudaError_t launch_bulk_lean(const QvgDecodeParams& p, cudaStream_t stream, bool& launched) {
    constexpr auto kernel = decode_bulk_kernel<kBits, kAsym, kStages, kRope, kLean>;
    constexpr size_t kSmem = 2 * kTileBytes;
    launched = false;
    const int64_t total = p.batch * p.heads * p.tokens;
    const BulkLayout lay = bulk_layout(p);
    if (total > 0x7fffffffLL || lay.tile_rows == 0) return cudaSuccess;
    int64_t blocks = 0;
    const cudaError_t err = resident_blocks<kernel>(blocks, kSmem);
    if (err != cudaSuccess) return err;
    blocks = std::min(blocks, (total + lay.tile_rows - 1) / lay.tile_rows);
    kernel<<<static_cast<unsigned>(blocks), kThreads, kSmem, stream>>>(p, lay);
    launched = true;
    return cudaGetLastError();
}

template <int kBits, bool kAsym, int kStages, bool kRope>
cudaError_t launch_bulk(const QvgDecodeParams& p, cudaStream_t stream, bool& launched) {
    return p.lean_math ? launch_bulk_lean<kBits, kAsym, kStages, kRope, true>(p, stream, launched)
                       : launch_bulk_lean<kBits, kAsym, kStages, kRope, false>(p, stream, launched);
}

// ---- Compact indexing (QvgDecodeParams::compact_index) -----------------------------------------

// The default layout (grid (x, heads, batch), kParts interleaved parts of 8 channels per
// thread: 4 without RoPE, 2 with it, whose cos/sin loads take registers; streaming stores) for
// dim kDim with 32-bit offsets, the group as a shift and the layout fixed
// at compile time. Nsight Compute at 4db12a9 found the generic kernel bound by instruction
// issue (0.76 warp instructions per cycle and scheduler, DRAM 45% busy), most of the
// instructions 64-bit offsets, layout selects made at run time and divisions. The loads and
// the stores are those of the default launch, the arithmetic decode_row's fused path (same bits).
// With element e = row * kDim + d0 of the (b, h, n, d) input: the INT2 codes of d0..d0+7 are the
// 16-bit word e / 8, the INT4 codes the 32-bit word e / 8, the scale byte e >> log2(group).
template <int kBits, bool kAsym, int kStages, int kDim, bool kRope>
__global__ void __launch_bounds__(kThreads) decode_compact_kernel(QvgDecodeParams p) {
    constexpr int kParts = kRope ? 2 : 4;
    constexpr unsigned kThreadsPerRow = kDim / (kVec * kParts);  // 4, 8 or 16
    constexpr unsigned kStep = kDim / kParts;  // channels between a thread's parts
    const unsigned local = blockIdx.x * kThreads + threadIdx.x;
    const unsigned n = local / kThreadsPerRow;
    const unsigned tokens = static_cast<unsigned>(p.tokens);
    if (n >= tokens) return;
    const unsigned first = (local % kThreadsPerRow) * kVec;
    const unsigned h = blockIdx.y, b = blockIdx.z;
    const unsigned bh = b * static_cast<unsigned>(p.heads) + h;
    const unsigned row = bh * tokens + n;
    const unsigned group_shift = static_cast<unsigned>(__ffs(p.group) - 1);  // a power of two
    unsigned id[kStages];
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
        if (st < p.num_stages) id[st] = __ldg(p.ids[st] + row);
    }
    RowLoads<kStages> l[kParts];
#pragma unroll
    for (int j = 0; j < kParts; ++j) {
        const unsigned e = row * kDim + first + j * kStep;
        if constexpr (kBits == 2) {
            l[j].codes = __ldg(reinterpret_cast<const uint16_t*>(p.codes) + (e >> 3));
        } else {
            l[j].codes = __ldg(reinterpret_cast<const uint32_t*>(p.codes) + (e >> 3));
        }
        l[j].scale = __ldg(p.scales + (e >> group_shift));
        if constexpr (kAsym) l[j].zero = __ldg(p.zeros + (e >> group_shift));
        if constexpr (kRope) {
            const unsigned pair = n * (kDim / 2) + (first + j * kStep) / 2;
            l[j].cos = __ldg(reinterpret_cast<const float4*>(p.rope_cos + pair));
            l[j].sin = __ldg(reinterpret_cast<const float4*>(p.rope_sin + pair));
        }
    }
    const unsigned centroids = static_cast<unsigned>(p.num_centroids);
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
        if (st < p.num_stages) {
            const unsigned c = (bh * centroids + id[st]) * kDim + first;
#pragma unroll
            for (int j = 0; j < kParts; ++j) l[j].cent[st] = load_centroid8(p, st, c + j * kStep);
        }
    }
    uint16_t* out = p.out + (b * static_cast<unsigned>(p.out_stride_b) +
                             n * static_cast<unsigned>(p.out_stride_n) +
                             h * static_cast<unsigned>(p.out_stride_h) + first);
#pragma unroll
    for (int j = 0; j < kParts; ++j)
        store16<true>(out + j * kStep,
                      decode_row<kBits, kAsym, kStages, kRope, false, true>(p, l[j]));
}

template <int kBits, bool kAsym, int kStages, bool kRope, int kDim>
void launch_compact_dim(const QvgDecodeParams& p, cudaStream_t stream) {
    const int64_t threads = p.tokens * (kDim / (kVec * (kRope ? 2 : 4)));
    const dim3 grid(static_cast<unsigned>((threads + kThreads - 1) / kThreads),
                    static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
    decode_compact_kernel<kBits, kAsym, kStages, kDim, kRope><<<grid, kThreads, 0, stream>>>(p);
}

// Launched for dim 128 or 256, a power-of-two group and every offset (inputs, codebooks, RoPE
// tables, output) below 2^32 elements; launched = false otherwise.
template <int kBits, bool kAsym, int kStages, bool kRope>
cudaError_t launch_compact(const QvgDecodeParams& p, cudaStream_t stream, bool& launched) {
    launched = false;
    constexpr int64_t kLimit = int64_t{1} << 32;
    const int64_t b = p.batch, h = p.heads, n = p.tokens, d = p.dim;
    if ((d != 128 && d != 256) || (p.group & (p.group - 1)) != 0 || h > 65535 || b > 65535 ||
        p.out_stride_b < 0 || p.out_stride_n < 0 || p.out_stride_h < 0) {
        return cudaSuccess;
    }
    const int64_t last_out =
        (b - 1) * p.out_stride_b + (n - 1) * p.out_stride_n + (h - 1) * p.out_stride_h + d;
    if (b * h * n * d >= kLimit || b * h * std::max<int64_t>(p.num_centroids, 1) * d >= kLimit ||
        last_out >= kLimit || n * (d / kVec) > 0x7fffffffLL - kThreads) {
        return cudaSuccess;
    }
    if (d == 128) {
        launch_compact_dim<kBits, kAsym, kStages, kRope, 128>(p, stream);
    } else {
        launch_compact_dim<kBits, kAsym, kStages, kRope, 256>(p, stream);
    }
    launched = true;
    return cudaGetLastError();
}

template <int kBits, bool kAsym, int kStages, bool kRope>
cudaError_t launch_decode(const QvgDecodeParams& in, cudaStream_t stream) {
    const int64_t vecs = in.dim / kVec;
    QvgDecodeParams p = in;
    {
        // The default launch is the compact kernel where it fits.
        const bool default_launch = p.parts_per_thread == 0 && p.streaming_stores &&
                                    !p.shared_centroids && p.rows_per_thread == 0 &&
                                    p.blocks_per_sm == 0 && !p.lean_math;
        if ((p.compact_index || default_launch) && !p.bulk_stores && p.pipelined == 0) {
            bool launched = false;
            const cudaError_t err =
                launch_compact<kBits, kAsym, kStages, kRope>(p, stream, launched);
            if (err != cudaSuccess || launched) return err;
        }
    }
    if (p.bulk_stores || p.pipelined > 0) {
        bool launched = false;
        const cudaError_t err =
            p.bulk_stores ? launch_bulk<kBits, kAsym, kStages, kRope>(p, stream, launched)
                          : launch_pipelined<kBits, kAsym, kStages, kRope>(p, stream, launched);
        if (err != cudaSuccess || launched) return err;
        // The layout does not fit: the default launch.
        p.parts_per_thread = 0;
        p.rows_per_thread = 0;
        p.shared_centroids = false;
    }
    int parts = p.parts_per_thread;
    if (parts == 0) {  // the default layout (qvg_decode.h says why)
        parts = !kRope && vecs % 4 == 0 ? 4 : vecs % 2 == 0 ? 2 : 1;
        p.interleaved_parts = !kRope;
    }
    if (vecs % parts != 0) return cudaErrorInvalidValue;
    if (p.rows_per_thread > 0 && parts == 4 && kThreads % (vecs / 4) == 0 &&
        p.batch * p.heads * p.tokens <= 0x7fffffffLL) {
        return launch_flat<kBits, kAsym, kStages, kRope>(p, stream);
    }
    switch (parts) {
        case 1:
            return launch_parts<kBits, kAsym, kStages, kRope, 1>(p, stream);
        case 2:
            return launch_parts<kBits, kAsym, kStages, kRope, 2>(p, stream);
        case 4:
            return launch_parts<kBits, kAsym, kStages, kRope, 4>(p, stream);
        default:
            return cudaErrorInvalidValue;
    }
}

// Registers are sized by the stage count (1 covers RTN and S1) and by whether RoPE tables are
// read (the plain decode does not hold them).
template <int kBits, bool kAsym>
cudaError_t launch_stages(const QvgDecodeParams& p, cudaStream_t stream) {
    const bool rope = p.rope_cos != nullptr;
    if (p.num_stages <= 1) {
        return rope ? launch_decode<kBits, kAsym, 1, true>(p, stream)
                    : launch_decode<kBits, kAsym, 1, false>(p, stream);
    }
    return rope ? launch_decode<kBits, kAsym, kMaxStages, true>(p, stream)
                : launch_decode<kBits, kAsym, kMaxStages, false>(p, stream);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

// kDefaultLayout: decode_kernel's grid and stores, nothing loaded or computed.
template <int kParts>
__global__ void __launch_bounds__(kThreads) write_default_layout_kernel(QvgDecodeParams p) {
    const unsigned threads_per_row = static_cast<unsigned>(p.dim / (kVec * kParts));
    const unsigned local = blockIdx.x * kThreads + threadIdx.x;
    const unsigned n = local / threads_per_row;
    if (n >= p.tokens) return;
    const unsigned heads = static_cast<unsigned>(p.heads);
    const int64_t b = blockIdx.y / heads, h = blockIdx.y % heads;
    int64_t first, step;
    part_layout<kParts>(p, local % threads_per_row, first, step);
    uint16_t* out = p.out + b * p.out_stride_b + n * p.out_stride_n + h * p.out_stride_h + first;
#pragma unroll
    for (int j = 0; j < kParts; ++j) store16<true>(out + j * step, make_uint4(0, 0, 0, 0));
}

// kLinear: chunk c of a block's 1024 (16 bytes each) at c = threadIdx.x + j * kThreads.
__global__ void __launch_bounds__(kThreads) write_linear_kernel(uint4* out, int64_t chunks) {
    const int64_t base = static_cast<int64_t>(blockIdx.x) * kThreads * 4 + threadIdx.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (base + j * kThreads < chunks) __stcs(out + base + j * kThreads, make_uint4(0, 0, 0, 0));
    }
}

}  // namespace

cudaError_t qvg_decode_write_ceiling(const QvgDecodeParams& in, QvgWriteCeiling kind,
                                     cudaStream_t stream) {
    if (in.out == nullptr || in.dim <= 0 || in.dim % kVec != 0 || !aligned16(in.out) ||
        in.out_stride_b % kVec || in.out_stride_n % kVec || in.out_stride_h % kVec ||
        in.batch < 0 || in.heads < 0 || in.tokens < 0 || in.batch * in.heads > 65535) {
        return cudaErrorInvalidValue;
    }
    const int64_t elems = in.batch * in.heads * in.tokens * in.dim;
    if (elems == 0) return cudaSuccess;
    const bool packed = packed_dim(in.heads, in.out_stride_h, in.dim) &&
                        packed_dim(in.tokens, in.out_stride_n, in.heads * in.dim) &&
                        packed_dim(in.batch, in.out_stride_b, in.tokens * in.heads * in.dim);
    if (kind == QvgWriteCeiling::kMemset) {
        if (!packed) return cudaErrorInvalidValue;
        return cudaMemsetAsync(in.out, 0, static_cast<size_t>(elems) * 2, stream);
    }
    if (kind == QvgWriteCeiling::kLinear) {
        if (!packed) return cudaErrorInvalidValue;
        const int64_t chunks = elems / kVec;
        const int64_t blocks = (chunks + kThreads * 4 - 1) / (kThreads * 4);
        if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
        write_linear_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
            reinterpret_cast<uint4*>(in.out), chunks);
        return cudaGetLastError();
    }
    // The default launch's parts (launch_decode without RoPE).
    QvgDecodeParams p = in;
    const int64_t vecs = p.dim / kVec;
    const int parts = vecs % 4 == 0 ? 4 : vecs % 2 == 0 ? 2 : 1;
    p.interleaved_parts = true;
    const int64_t per_head = p.tokens * (vecs / parts);
    if (per_head > 0xffffffffLL - kThreads) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>((per_head + kThreads - 1) / kThreads),
                    static_cast<unsigned>(p.batch * p.heads));
    if (parts == 4) {
        write_default_layout_kernel<4><<<grid, kThreads, 0, stream>>>(p);
    } else if (parts == 2) {
        write_default_layout_kernel<2><<<grid, kThreads, 0, stream>>>(p);
    } else {
        write_default_layout_kernel<1><<<grid, kThreads, 0, stream>>>(p);
    }
    return cudaGetLastError();
}

cudaError_t qvg_decode_bf16(const QvgDecodeParams& p, cudaStream_t stream) {
    if (validate(p)[0] != '\0') return cudaErrorInvalidValue;
    if (p.group % kVec != 0) return cudaErrorInvalidValue;
    if (!aligned16(p.out) || p.out_stride_b % kVec || p.out_stride_n % kVec ||
        p.out_stride_h % kVec) {
        return cudaErrorInvalidValue;
    }
    for (int s = 0; s < p.num_stages; ++s) {
        if (p.centroids_fp8[s] != nullptr ? reinterpret_cast<uintptr_t>(p.centroids_fp8[s]) % 8
                                          : !aligned16(p.centroids[s])) {
            return cudaErrorInvalidValue;
        }
    }
    if (p.rope_cos != nullptr && (!aligned16(p.rope_cos) || !aligned16(p.rope_sin)))
        return cudaErrorInvalidValue;
    if ((p.bits == 2 && reinterpret_cast<uintptr_t>(p.codes) % 2) ||
        (p.bits == 4 && reinterpret_cast<uintptr_t>(p.codes) % 4)) {
        return cudaErrorInvalidValue;
    }
    if (p.batch * p.heads * p.tokens == 0) return cudaSuccess;
    if (p.bits == 2) {
        return p.asymmetric ? launch_stages<2, true>(p, stream)
                            : launch_stages<2, false>(p, stream);
    }
    return p.asymmetric ? launch_stages<4, true>(p, stream) : launch_stages<4, false>(p, stream);
}

// One thread per code byte: its two entries, stored as one 32-bit word.
__global__ void __launch_bounds__(kThreads) widen_int4_kernel(Int4CodebookParams p) {
    const int64_t half = p.dim / 2;
    const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
    if (i >= p.rows * half) return;
    const int64_t r = i / half;
    const float s = fp8_e4m3_to_float(__ldg(p.scales + r));
    const float z = fp8_e4m3_to_float(__ldg(p.zeros + r));
    const unsigned byte = __ldg(p.codes + i);
    const float hi = __fadd_rn(__fmul_rn(static_cast<float>(byte >> 4), s), z);
    const float lo = __fadd_rn(__fmul_rn(static_cast<float>(byte & 0xfu), s), z);
    const uint32_t w = static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) |
                       (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) << 16);
    reinterpret_cast<uint32_t*>(p.out)[i] = w;
}

cudaError_t widen_int4_codebook(const Int4CodebookParams& p, cudaStream_t stream) {
    if (p.dim <= 0 || p.dim % 2 != 0 || p.rows < 0 || p.codes == nullptr || p.scales == nullptr ||
        p.zeros == nullptr || p.out == nullptr || reinterpret_cast<uintptr_t>(p.out) % 4 != 0) {
        return cudaErrorInvalidValue;
    }
    const int64_t total = p.rows * (p.dim / 2);
    if (total == 0) return cudaSuccess;
    const int64_t blocks = (total + kThreads - 1) / kThreads;
    if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
    widen_int4_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace qvg::kernels
