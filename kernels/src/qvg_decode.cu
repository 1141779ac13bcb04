// QVG span decode on the GPU.
//
// Design: the decode is pure bandwidth (a span of K for one layer reads ~16 MB of codes, scales,
// ids and codebooks and writes ~115 MB of BF16), so each thread produces 8 consecutive channels
// of a token with one 16-byte store, after loading 2 (INT2) or 4 (INT4) code bytes, one scale
// byte and one 16-byte slice of each stage's centroid row; a grid row per (b, h). Launch
// variants (QvgDecodeParams::parts_per_thread, streaming_stores, interleaved_parts,
// shared_centroids, rows_per_thread, persistent) are timed side by side by `qvg kernel-bench
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
// Arithmetic mirrors the CPU codec operation for operation (__fmul_rn/__fadd_rn: no FMA
// contraction), so results are bit-identical. Offsets are 64-bit.

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

// What one thread needs from memory for 8 channels of one (b, h, n) row, for spans of at most
// kStages stages (registers are sized by it: 1 covers RTN and S1, the common case).
template <int kStages>
struct RowLoads {
    uint32_t codes = 0;  // 2 (INT2) or 4 (INT4) code bytes
    uint8_t scale = 0, zero = 0;
    uint4 cent[kStages];
    float4 cos, sin;
};

// table: the head's codebooks in shared memory ([stage][C][D]), or null to read them from
// global memory.
template <int kBits, bool kAsym, int kStages, bool kRope>
__device__ __forceinline__ void load_row(const QvgDecodeParams& p, int64_t bh, int64_t n,
                                         int64_t d0, RowLoads<kStages>& l,
                                         const uint16_t* table = nullptr) {
    const int64_t row = bh * p.tokens + n;
    if constexpr (kBits == 2) {
        l.codes = __ldg(reinterpret_cast<const uint16_t*>(p.codes + row * (p.dim / 4) + d0 / 4));
    } else {
        l.codes = __ldg(reinterpret_cast<const uint32_t*>(p.codes + row * (p.dim / 2) + d0 / 2));
    }
    const int64_t g = row * (p.dim / p.group) + d0 / p.group;
    l.scale = __ldg(p.scales + g);
    if constexpr (kAsym) l.zero = __ldg(p.zeros + g);
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
        if (st < p.num_stages) {
            const int id = __ldg(p.ids[st] + row);
            if (table != nullptr) {
                l.cent[st] = *reinterpret_cast<const uint4*>(
                    table + (st * p.num_centroids + id) * p.dim + d0);
            } else {
                l.cent[st] = __ldg(reinterpret_cast<const uint4*>(
                    p.centroids[st] + (bh * p.num_centroids + id) * p.dim + d0));
            }
        }
    }
    if constexpr (kRope) {
        l.cos = __ldg(reinterpret_cast<const float4*>(p.rope_cos + n * (p.dim / 2) + d0 / 2));
        l.sin = __ldg(reinterpret_cast<const float4*>(p.rope_sin + n * (p.dim / 2) + d0 / 2));
    }
}

// 8 BF16 channels, packed, from one row's loads.
template <int kBits, bool kAsym, int kStages, bool kRope>
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
    if constexpr (kAsym) {
        const float z = fp8_e4m3_to_float(l.zero);
#pragma unroll
        for (int i = 0; i < kVec; ++i) y[i] = __fadd_rn(__fmul_rn(static_cast<float>(u[i]), s), z);
    } else {
        constexpr int kQmax = (1 << (kBits - 1)) - 1;
#pragma unroll
        for (int i = 0; i < kVec; ++i) {
            y[i] = __fadd_rn(__fmul_rn(static_cast<float>(u[i] - kQmax), s), 0.0f);
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
    if constexpr (kRope) {
        // Round the decode to BF16 first, then rotate as the RoPE kernel rotates BF16 keys.
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
    uint32_t packed[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const __nv_bfloat16 lo = __float2bfloat16_rn(y[2 * i]);
        const __nv_bfloat16 hi = __float2bfloat16_rn(y[2 * i + 1]);
        uint16_t lo_bits, hi_bits;
        memcpy(&lo_bits, &lo, 2);
        memcpy(&hi_bits, &hi, 2);
        packed[i] = static_cast<uint32_t>(lo_bits) | (static_cast<uint32_t>(hi_bits) << 16);
    }
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
        step = p.dim / kParts;
    } else {
        first = static_cast<int64_t>(t) * kVec * kParts;
        step = kVec;
    }
}

// One row: all loads first (independent requests in flight), then arithmetic and stores.
template <int kBits, bool kAsym, int kStages, bool kRope, int kParts, bool kStream>
__device__ __forceinline__ void decode_one_row(const QvgDecodeParams& p, int64_t bh, int64_t n,
                                               unsigned t, const uint16_t* table) {
    const unsigned heads = static_cast<unsigned>(p.heads);  // < 65536 (checked at launch)
    const int64_t b = static_cast<unsigned>(bh) / heads, h = static_cast<unsigned>(bh) % heads;
    int64_t first, step;
    part_layout<kParts>(p, t, first, step);
    RowLoads<kStages> l[kParts];
#pragma unroll
    for (int j = 0; j < kParts; ++j)
        load_row<kBits, kAsym, kStages, kRope>(p, bh, n, first + j * step, l[j], table);
    uint16_t* out = p.out + b * p.out_stride_b + n * p.out_stride_n + h * p.out_stride_h + first;
#pragma unroll
    for (int j = 0; j < kParts; ++j)
        store16<kStream>(out + j * step, decode_row<kBits, kAsym, kStages, kRope>(p, l[j]));
}

// grid.y = b * heads + h, grid.x covers this head's tokens x (dim / (8 * kParts)) threads; with
// kStream the stores bypass the caches (st.global.cs: the decoded span is read once, by the
// attention, after much more data went through L2).
template <int kBits, bool kAsym, int kStages, bool kRope, int kParts, bool kStream>
__global__ void __launch_bounds__(kThreads) decode_kernel(QvgDecodeParams p) {
    const unsigned threads_per_row = static_cast<unsigned>(p.dim / (kVec * kParts));
    const unsigned local = blockIdx.x * kThreads + threadIdx.x;
    const unsigned n32 = local / threads_per_row;
    if (n32 >= p.tokens) return;
    decode_one_row<kBits, kAsym, kStages, kRope, kParts, kStream>(p, blockIdx.y, n32,
                                                                  local % threads_per_row, nullptr);
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

// SMs x resident blocks of a kernel at kThreads threads, looked up once per kernel and device.
template <typename Kernel>
cudaError_t resident_blocks(Kernel kernel, int64_t& blocks) {
    static int cached[16][2] = {};  // per device: blocks per SM, SMs (0: not looked up yet)
    int device = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err != cudaSuccess) return err;
    int per_sm = device < 16 ? cached[device][0] : 0, sms = device < 16 ? cached[device][1] : 0;
    if (per_sm == 0 || sms == 0) {
        if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0)) !=
                cudaSuccess ||
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
    auto kernel = decode_flat_kernel<kBits, kAsym, kStages, kRope, kRows, kStream>;
    const int64_t total = p.batch * p.heads * p.tokens;
    const int64_t per_step = kThreads / (p.dim / (kVec * 4)) * kRows;
    int64_t blocks = (total + per_step - 1) / per_step;
    if (p.persistent) {
        int64_t resident = 0;
        const cudaError_t err = resident_blocks(kernel, resident);
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
        decode_one_row<kBits, kAsym, kStages, kRope, kParts, kStream>(p, bh, n, t, table);
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
    if (p.shared_centroids && p.num_stages > 0) {
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
                    static_cast<unsigned>(p.batch * p.heads));
    if (p.streaming_stores) {
        decode_kernel<kBits, kAsym, kStages, kRope, kParts, true><<<grid, kThreads, 0, stream>>>(p);
    } else {
        decode_kernel<kBits, kAsym, kStages, kRope, kParts, false>
            <<<grid, kThreads, 0, stream>>>(p);
    }
    return cudaGetLastError();
}

template <int kBits, bool kAsym, int kStages, bool kRope>
cudaError_t launch_decode(const QvgDecodeParams& in, cudaStream_t stream) {
    const int64_t vecs = in.dim / kVec;
    QvgDecodeParams p = in;
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

}  // namespace

cudaError_t qvg_decode_bf16(const QvgDecodeParams& p, cudaStream_t stream) {
    if (validate(p)[0] != '\0') return cudaErrorInvalidValue;
    if (p.group % kVec != 0) return cudaErrorInvalidValue;
    if (!aligned16(p.out) || p.out_stride_b % kVec || p.out_stride_n % kVec ||
        p.out_stride_h % kVec) {
        return cudaErrorInvalidValue;
    }
    for (int s = 0; s < p.num_stages; ++s) {
        if (!aligned16(p.centroids[s])) return cudaErrorInvalidValue;
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

}  // namespace qvg::kernels
