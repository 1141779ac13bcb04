// QVG span encode kernels.
//
// kmeans_update: one warp per cluster lists its members in token order and sums them in fp32
// - the CPU codec's index_add order - so the new centroids are bit-identical to the CPU's for
// the same ids; no sort and no float atomics (the reference's atomics make its k-means
// nondeterministic). See update_list_kernel (update_kernel: the previous form, for benchmarks).
//
// kmeans_assign: distances on tensor cores (mma.sync BF16 -> fp32) with the argmin fused; see
// the comments above assign_kernel (previous form, for benchmarks) and assign_resident_kernel.
//
// kmeans_init: Floyd's draws replayed on the device; collisions checked in parallel.
//
// residual_quant: 8 channels per thread (16-byte loads of the centroid row), a group's G/8
// threads reduce amax (or min/max) with xor shuffles, the first thread of a group stores the
// FP8 scale, every thread packs its 8 codes into 2 (INT2) or 4 (INT4) bytes. The per-token
// error sums are reduced across the row's D/8 threads with shuffles in a fixed order.
// All arithmetic uses explicitly rounded intrinsics (no FMA contraction): codes and scales match
// the CPU codec bit for bit.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "qvg/kernels/qvg_encode_cuda.h"
#include "qvg/kernels/rng.h"

namespace qvg::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;

__device__ __forceinline__ float bf16_round(float v) {
    return __bfloat162float(__float2bfloat16_rn(v));
}

__device__ __forceinline__ uint8_t fp8_encode(float v) {
    return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

__device__ __forceinline__ float fp8_decode(uint8_t bits) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(bits), __NV_E4M3);
    return __half2float(__half(h));
}

__device__ __forceinline__ float round_half_away(float v) {
    float t = truncf(v);
    if (fabsf(__fsub_rn(v, t)) >= 0.5f) t = __fadd_rn(t, v > 0.0f ? 1.0f : -1.0f);
    return t;
}

// One warp per cluster, 8 clusters per block. The block stages the group's ids in shared memory
// (32 KiB at a time); each warp scans them in token order, 32 at a time, and a ballot gives the
// members among those 32. Members are then summed in token order, each lane owning D / 32
// channels: a sequential fp32 chain per channel, as the reference, with up to four member rows
// loaded before they are added. No sort, no atomics, one pass over the tokens.
constexpr int kUpdateWarps = 8;
constexpr int kUpdateChunk = 32768;  // ids staged per pass

// A lane's D / 32 channels of one row, BF16.
template <int D>
using UpdateVec =
    typename std::conditional<D / 32 == 2, uint32_t,
                              typename std::conditional<D / 32 == 4, uint2, uint4>::type>::type;

// Adds one member's slice to the lane's fp32 sums (one sequential chain per channel).
template <int D>
__device__ __forceinline__ void add_member(float (&sum)[D / 32], const UpdateVec<D>& v) {
    const uint32_t* w = reinterpret_cast<const uint32_t*>(&v);
#pragma unroll
    for (int i = 0; i < D / 64; ++i) {
        sum[2 * i] = __fadd_rn(sum[2 * i], __uint_as_float(w[i] << 16));
        sum[2 * i + 1] = __fadd_rn(sum[2 * i + 1], __uint_as_float(w[i] & 0xffff0000u));
    }
}

// The lane's slice of cluster c's new centroid (the members' mean rounded to BF16, the old
// value when it has none) and, from lane 0, its member count.
template <int D>
__device__ __forceinline__ void store_centroid(const KMeansUpdateParams& p, int64_t g, int64_t c,
                                               int lane, const float (&sum)[D / 32],
                                               int64_t count) {
    constexpr int kPer = D / 32;
    using Vec = UpdateVec<D>;
    if (p.counts != nullptr && lane == 0)
        p.counts[g * p.centroids + c] = static_cast<int32_t>(count);
    const int64_t slot = (g * p.centroids + c) * D + lane * kPer;
    Vec out;
    if (count == 0) {
        out = *reinterpret_cast<const Vec*>(p.old + slot);
    } else {
        uint32_t* w = reinterpret_cast<uint32_t*>(&out);
        const float n = static_cast<float>(count);
#pragma unroll
        for (int i = 0; i < kPer / 2; ++i) {
            const __nv_bfloat162 mean =
                __halves2bfloat162(__float2bfloat16_rn(__fdiv_rn(sum[2 * i], n)),
                                   __float2bfloat16_rn(__fdiv_rn(sum[2 * i + 1], n)));
            memcpy(&w[i], &mean, 4);
        }
    }
    *reinterpret_cast<Vec*>(p.out + slot) = out;
}

template <int D>
__global__ void __launch_bounds__(kUpdateWarps * 32) update_kernel(KMeansUpdateParams p) {
    constexpr int kPer = D / 32;  // channels per lane: 2, 4 or 8
    using Vec = UpdateVec<D>;
    __shared__ uint8_t ids[kUpdateChunk];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t g = blockIdx.y;
    const int64_t c = static_cast<int64_t>(blockIdx.x) * kUpdateWarps + warp;
    const bool active = c < p.centroids;
    const Vec* x = reinterpret_cast<const Vec*>(p.x + g * p.tokens * D) + lane;
    float sum[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) sum[i] = 0.0f;
    int64_t count = 0;
    for (int64_t base = 0; base < p.tokens; base += kUpdateChunk) {
        const int len = static_cast<int>(min(static_cast<int64_t>(kUpdateChunk), p.tokens - base));
        __syncthreads();
        for (int i = threadIdx.x; i < len; i += kUpdateWarps * 32)
            ids[i] = p.ids[g * p.tokens + base + i];
        __syncthreads();
        if (!active) continue;
        for (int t0 = 0; t0 < len; t0 += 32) {
            const int t = t0 + lane;
            unsigned m = __ballot_sync(0xffffffffu, t < len && ids[t] == c);
            count += __popc(m);
            while (m) {
                int tok[4];
                int k = 0;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    tok[j] = m ? __ffs(m) - 1 : -1;
                    if (m) {
                        m &= m - 1;
                        ++k;
                    }
                }
                Vec v[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (j < k) v[j] = __ldg(x + (base + t0 + tok[j]) * (D / kPer));
                }
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    if (j < k) add_member<D>(sum, v[j]);
                }
            }
        }
    }
    if (active) store_centroid<D>(p, g, c, lane, sum, count);
}

// The same sums in the same order, with many member rows in flight. The legacy kernel above
// adds each member as soon as its ballot finds it: members of one cluster are ~1 in 256 tokens,
// so a warp has about one 256-byte row load in flight and waits for it (0.28 ms on the H200 for
// a [12, 37440, 128] span, ~8x the bandwidth bound). Here each warp first lists its members in
// shared memory (ascending token order: 4 ids per lane per step, __vcmpeq4, a warp prefix sum
// over the lanes' match counts), then sums the list kBatch rows at a time: all kBatch loads are
// issued before the first add, and each channel is still one sequential fp32 chain in token
// order - the bits of update_kernel and of the CPU reference.
constexpr int kListWarps = 8;
constexpr int kListChunk = 32768;  // ids staged per pass (multiple of 128)
constexpr int kListCap = 512;      // member offsets a warp collects before it sums them

template <int D>
__global__ void __launch_bounds__(kListWarps * 32) update_list_kernel(KMeansUpdateParams p) {
    constexpr int kPer = D / 32;  // channels per lane: 2, 4 or 8
    constexpr int kBatch = D == 256 ? 8 : 16;
    using Vec = UpdateVec<D>;
    __shared__ __align__(16) uint8_t ids[kListChunk];
    __shared__ uint16_t lists[kListWarps][kListCap];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t g = blockIdx.y;
    const int64_t c = static_cast<int64_t>(blockIdx.x) * kListWarps + warp;
    const bool active = c < p.centroids;
    const Vec* x = reinterpret_cast<const Vec*>(p.x + g * p.tokens * D) + lane;
    uint16_t* list = lists[warp];
    float sum[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) sum[i] = 0.0f;
    int listed = 0;     // same in every lane
    int64_t count = 0;  // same in every lane
    // Adds the listed members (offsets from base) in list order, then empties the list.
    auto flush = [&](int64_t base) {
        __syncwarp();
        for (int i = 0; i < listed; i += kBatch) {
            Vec v[kBatch];
#pragma unroll
            for (int j = 0; j < kBatch; ++j) {
                if (i + j < listed) v[j] = __ldg(x + (base + list[i + j]) * (D / kPer));
            }
#pragma unroll
            for (int j = 0; j < kBatch; ++j) {
                if (i + j < listed) add_member<D>(sum, v[j]);
            }
        }
        listed = 0;
        __syncwarp();
    };
    const uint32_t pattern = static_cast<uint32_t>(c & 0xff) * 0x01010101u;
    for (int64_t base = 0; base < p.tokens; base += kListChunk) {
        const int len = static_cast<int>(min(static_cast<int64_t>(kListChunk), p.tokens - base));
        __syncthreads();
        const uint8_t* src = p.ids + g * p.tokens + base;
        for (int i = threadIdx.x; i < len; i += kListWarps * 32) ids[i] = src[i];
        __syncthreads();
        if (!active) continue;
        for (int t0 = 0; t0 < len; t0 += 128) {
            if (listed > kListCap - 128) flush(base);
            const int t = t0 + 4 * lane;
            const int valid = min(max(len - t, 0), 4);
            uint32_t m = 0;
            if (valid > 0) {
                m = __vcmpeq4(*reinterpret_cast<const uint32_t*>(ids + t), pattern);
                if (valid < 4) m &= (1u << (8 * valid)) - 1u;  // byte b is token t + b
            }
            const int n = __popc(m) >> 3;
            if (__ballot_sync(0xffffffffu, n != 0) == 0) continue;
            int incl = n;
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                const int o = __shfl_up_sync(0xffffffffu, incl, off);
                if (lane >= off) incl += o;
            }
            int pos = listed + incl - n;
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                if (m & (0xffu << (8 * b))) list[pos++] = static_cast<uint16_t>(t + b);
            }
            const int total = __shfl_sync(0xffffffffu, incl, 31);
            listed += total;
            count += total;
        }
        flush(base);
    }
    if (active) store_centroid<D>(p, g, c, lane, sum, count);
}

// ---- Nearest centroid on tensor cores ----------------------------------------------------------
//
// A block takes 128 tokens of one group and all of the group's centroids. Both live in shared
// memory as BF16 rows padded by 8 elements (a row stride of D + 8 puts the 8 rows one mma
// fragment load touches on distinct banks). Each of the 4 warps owns 32 tokens (two m16 tiles)
// and sweeps the centroids 64 at a time with mma.sync m16n8k16 (fp32 accumulators), folding
// every 32x64 tile of dot products into a running (best score, index) per token row before the
// next tile: the [N, C] matrix never exists. The quad of lanes that shares a row merges its
// candidates with shuffles (ties to the lower index) at the end.

constexpr int kAssignTokens = 128;
constexpr int kAssignThreads = 128;
constexpr int kAssignTile = 64;  // centroids per sweep step

__device__ __forceinline__ uint32_t lds32(const uint16_t* p) {
    return *reinterpret_cast<const uint32_t*>(p);
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Sum of squares of one BF16 row by a warp: lane l sums the pairs at 2l + 64j (j ascending) in
// fp32, then a xor butterfly (offsets 16, 8, 4, 2, 1) adds the lanes' partial sums. Every lane
// ends with the same value (fp32 addition commutes); assign_reference repeats this order.
template <int D>
__device__ __forceinline__ float row_norm2_warp(const uint16_t* row, int lane) {
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < D / 64; ++j) {
        const uint32_t w = lds32(row + 2 * lane + 64 * j);
        const float a = __uint_as_float(w << 16), b = __uint_as_float(w & 0xffff0000u);
        s = __fadd_rn(s, __fmul_rn(a, a));
        s = __fadd_rn(s, __fmul_rn(b, b));
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, off));
    return s;
}

template <int D>
__global__ void __launch_bounds__(kAssignThreads) assign_kernel(AssignParams p) {
    constexpr int S = D + 8;  // padded row stride, elements
    extern __shared__ __align__(16) unsigned char smem[];
    const int cpad =
        static_cast<int>((p.num_centroids + kAssignTile - 1) / kAssignTile) * kAssignTile;
    uint16_t* cs = reinterpret_cast<uint16_t*>(smem);              // [cpad][S]
    uint16_t* xs = cs + cpad * S;                                  // [128][S]
    float* cn = reinterpret_cast<float*>(xs + kAssignTokens * S);  // [cpad]
    float* xn = cn + cpad;                                         // [128]

    const int64_t g = blockIdx.y;
    const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kAssignTokens;
    const int tid = threadIdx.x;
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const uint4* csrc = reinterpret_cast<const uint4*>(p.centroids + g * p.num_centroids * D);
    for (int i = tid; i < cpad * kChunks; i += kAssignThreads) {
        const int r = i / kChunks, k = i % kChunks;
        *reinterpret_cast<uint4*>(cs + r * S + k * 8) =
            r < p.num_centroids ? __ldg(csrc + static_cast<int64_t>(r) * kChunks + k) : zero;
    }
    const uint4* xsrc = reinterpret_cast<const uint4*>(p.x + (g * p.tokens + row0) * D);
    const int64_t rows = min(static_cast<int64_t>(kAssignTokens), p.tokens - row0);
    for (int i = tid; i < kAssignTokens * kChunks; i += kAssignThreads) {
        const int r = i / kChunks, k = i % kChunks;
        *reinterpret_cast<uint4*>(xs + r * S + k * 8) =
            r < rows ? __ldg(xsrc + static_cast<int64_t>(r) * kChunks + k) : zero;
    }
    __syncthreads();
    const int warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
    constexpr int kWarps = kAssignThreads / 32;
    for (int c = warp; c < cpad; c += kWarps) {
        const float v = row_norm2_warp<D>(cs + c * S, lane);
        if (lane == 0) cn[c] = c < p.num_centroids ? v : INFINITY;
    }
    for (int r = warp; r < kAssignTokens; r += kWarps) {
        const float v = row_norm2_warp<D>(xs + r * S, lane);
        if (lane == 0) xn[r] = v;
    }
    __syncthreads();

    float best[2][2];
    int idx[2][2];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            best[mt][h] = INFINITY;
            idx[mt][h] = 0x7fffffff;
        }
    const uint16_t* xa = xs + (warp * 32 + gq) * S + 2 * tq;
    for (int c0 = 0; c0 < cpad; c0 += kAssignTile) {
        float acc[2][8][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[mt][nt][j] = 0.0f;
        const uint16_t* cb = cs + (c0 + gq) * S + 2 * tq;
#pragma unroll
        for (int k0 = 0; k0 < D; k0 += 16) {
            uint32_t a[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                const uint16_t* base = xa + mt * 16 * S + k0;
                a[mt][0] = lds32(base);
                a[mt][1] = lds32(base + 8 * S);
                a[mt][2] = lds32(base + 8);
                a[mt][3] = lds32(base + 8 * S + 8);
            }
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
                const uint16_t* bb = cb + nt * 8 * S + k0;
                const uint32_t b0 = lds32(bb), b1 = lds32(bb + 8);
                mma_bf16(acc[0][nt], a[0], b0, b1);
                mma_bf16(acc[1][nt], a[1], b0, b1);
            }
        }
        // Columns in ascending order per thread: a strict < keeps the lowest index on ties.
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const int col = c0 + nt * 8 + 2 * tq + j;
                const float cnc = cn[col];
#pragma unroll
                for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const float score =
                            __fadd_rn(cnc, __fmul_rn(-2.0f, acc[mt][nt][2 * h + j]));
                        if (score < best[mt][h]) {
                            best[mt][h] = score;
                            idx[mt][h] = col;
                        }
                    }
            }
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float b = best[mt][h];
            int i = idx[mt][h];
#pragma unroll
            for (int off = 1; off < 4; off <<= 1) {
                const float ob = __shfl_xor_sync(0xffffffffu, b, off);
                const int oi = __shfl_xor_sync(0xffffffffu, i, off);
                if (ob < b || (ob == b && oi < i)) {
                    b = ob;
                    i = oi;
                }
            }
            // No candidate only when every score is NaN (non-finite input): the CPU reference
            // then keeps centroid 0; never write an id outside the codebook.
            if (i >= p.num_centroids) i = 0;
            const int r = warp * 32 + mt * 16 + h * 8 + gq;
            if (tq == 0 && r < rows) {
                const int64_t out = g * p.tokens + row0 + r;
                if (p.ids != nullptr) {
                    p.ids[out] = i;
                } else {
                    p.ids_u8[out] = static_cast<uint8_t>(i);
                }
                if (p.dist != nullptr) p.dist[out] = fmaxf(__fadd_rn(b, xn[r]), 0.0f);
            }
        }
}

size_t assign_smem_bytes(int64_t dim, int64_t centroids) {
    const int64_t cpad = (centroids + kAssignTile - 1) / kAssignTile * kAssignTile;
    return static_cast<size_t>((cpad + kAssignTokens) * (dim + 8) * 2 + (cpad + kAssignTokens) * 4);
}

template <int D>
cudaError_t launch_assign(const AssignParams& p, cudaStream_t stream) {
    const size_t smem = assign_smem_bytes(D, p.num_centroids);
    const cudaError_t attr = cudaFuncSetAttribute(
        assign_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (attr != cudaSuccess) return attr;
    const dim3 grid(static_cast<unsigned>((p.tokens + kAssignTokens - 1) / kAssignTokens),
                    static_cast<unsigned>(p.groups));
    assign_kernel<D><<<grid, kAssignThreads, smem, stream>>>(p);
    return cudaGetLastError();
}

// ---- Nearest centroid, codebook resident --------------------------------------------------------
//
// The legacy assign_kernel above gives every 128 tokens a block that loads the group's whole
// codebook (64 KiB at C 256, D 128) from L2, computes its 256 norms, and then streams its B
// fragments with 32-bit shared loads: for a [12, 37440, 128] span that is 3.5k blocks moving
// 225 MB of codebook for 115 MB of tokens, two blocks per SM and no overlap of loads with math
// (0.36 ms on the H200, ~8x its bound). Here a group's blocks (one wave: SMs / groups of them)
// load the codebook and its norms once and stay: each warp walks its share of the group's
// tiles of kTok tokens, copying the next tile with cp.async into its own shared buffer while
// it sweeps the current one. A tile's A fragments are read once (ldmatrix) into registers and
// kept for the whole sweep of the codebook, whose B fragments come by ldmatrix.x4 (two n8 x
// k16 fragments per instruction). The per-row arithmetic - mma.sync k16 steps in ascending k
// into fp32, score = ||c||^2 + (-2 * dot), columns ascending with ties to the lower index, the
// quad merge - is assign_kernel's, so both give the same ids and distances bit for bit.
template <int D>
struct ResidentShape {
    static constexpr int kMT = D >= 256 ? 1 : 2;      // m16 tiles per warp
    static constexpr int kWarps = D >= 256 ? 8 : 12;  // shared memory: codebook + kWarps tiles
    static constexpr int kTok = 16 * kMT;             // tokens per warp tile
    static constexpr int kStride = D + 8;             // padded row, elements
};
constexpr int kSweep = 32;  // centroids per sweep step (four n8 tiles)

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

// 16 bytes global -> shared, bypassing L1; src_bytes 0 writes zeros (rows past the end).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

template <int D>
size_t resident_smem_bytes(int64_t centroids) {
    using Sh = ResidentShape<D>;
    const int64_t cpad = (centroids + kSweep - 1) / kSweep * kSweep;
    return static_cast<size_t>(cpad * Sh::kStride * 2 + cpad * 4 +
                               Sh::kWarps * Sh::kTok * Sh::kStride * 2);
}

template <int D>
__global__ void __launch_bounds__(ResidentShape<D>::kWarps * 32, 1)
    assign_resident_kernel(AssignParams p) {
    using Sh = ResidentShape<D>;
    constexpr int S = Sh::kStride, kMT = Sh::kMT, kTok = Sh::kTok, kK = D / 16;
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    extern __shared__ __align__(16) unsigned char smem[];
    const int cpad = static_cast<int>((p.num_centroids + kSweep - 1) / kSweep) * kSweep;
    uint16_t* cs = reinterpret_cast<uint16_t*>(smem);     // [cpad][S]
    float* cn = reinterpret_cast<float*>(cs + cpad * S);  // [cpad]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
    uint16_t* xs = reinterpret_cast<uint16_t*>(cn + cpad) + warp * kTok * S;  // [kTok][S]

    const int64_t g = blockIdx.y;
    const int64_t tiles = (p.tokens + kTok - 1) / kTok;
    const int64_t t_end = tiles * (blockIdx.x + 1) / gridDim.x;
    int64_t tile = tiles * blockIdx.x / gridDim.x + warp;
    const uint16_t* xg = p.x + g * p.tokens * D;
    auto prefetch = [&](int64_t t) {
        const int64_t row0 = t * kTok;
        for (int i = lane; i < kTok * kChunks; i += 32) {
            const int r = i / kChunks, k = i % kChunks;
            const bool ok = row0 + r < p.tokens;
            cp_async16(smem_u32(xs + r * S + k * 8), xg + (ok ? (row0 + r) * D + k * 8 : 0),
                       ok ? 16 : 0);
        }
        cp_async_commit();
    };
    if (tile < t_end) prefetch(tile);  // in flight while the codebook loads

    const uint4 zero = make_uint4(0, 0, 0, 0);
    const uint4* csrc = reinterpret_cast<const uint4*>(p.centroids + g * p.num_centroids * D);
    for (int i = threadIdx.x; i < cpad * kChunks; i += Sh::kWarps * 32) {
        const int r = i / kChunks, k = i % kChunks;
        *reinterpret_cast<uint4*>(cs + r * S + k * 8) =
            r < p.num_centroids ? __ldg(csrc + static_cast<int64_t>(r) * kChunks + k) : zero;
    }
    __syncthreads();
    for (int c = warp; c < cpad; c += Sh::kWarps) {
        const float v = row_norm2_warp<D>(cs + c * S, lane);
        if (lane == 0) cn[c] = c < p.num_centroids ? v : INFINITY;
    }
    __syncthreads();

    for (; tile < t_end; tile += Sh::kWarps) {
        cp_async_wait_all();
        __syncwarp();
        uint32_t a[kMT][kK][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
            for (int kk = 0; kk < kK; ++kk) {
                const int row = mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                ldmatrix_x4(a[mt][kk], smem_u32(xs + row * S + kk * 16 + (lane >> 4) * 8));
            }
        // ||x||^2 of row `lane` (only for the distances), in row_norm2_warp's order.
        float my_xn = 0.0f;
        if (p.dist != nullptr) {
            for (int r = 0; r < kTok; ++r) {
                const float v = row_norm2_warp<D>(xs + r * S, lane);
                if (lane == r) my_xn = v;
            }
        }
        __syncwarp();  // every lane is done with xs
        const int64_t row0 = tile * kTok;
        if (tile + Sh::kWarps < t_end) prefetch(tile + Sh::kWarps);

        float best[kMT][2];
        int idx[kMT][2];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                best[mt][h] = INFINITY;
                idx[mt][h] = 0x7fffffff;
            }
        for (int c0 = 0; c0 < cpad; c0 += kSweep) {
            float acc[kMT][4][4];
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[mt][nt][j] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < kK; ++kk) {
                uint32_t b[4][2];
#pragma unroll
                for (int np = 0; np < 2; ++np) {
                    uint32_t r[4];
                    const int crow = c0 + np * 16 + (lane & 7) + (lane >> 4) * 8;
                    ldmatrix_x4(r, smem_u32(cs + crow * S + kk * 16 + ((lane >> 3) & 1) * 8));
                    b[2 * np][0] = r[0];
                    b[2 * np][1] = r[1];
                    b[2 * np + 1][0] = r[2];
                    b[2 * np + 1][1] = r[3];
                }
#pragma unroll
                for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                    for (int mt = 0; mt < kMT; ++mt)
                        mma_bf16(acc[mt][nt], a[mt][kk], b[nt][0], b[nt][1]);
            }
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
                const float2 cnc = *reinterpret_cast<const float2*>(cn + c0 + nt * 8 + 2 * tq);
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    const int col = c0 + nt * 8 + 2 * tq + j;
                    const float cj = j == 0 ? cnc.x : cnc.y;
#pragma unroll
                    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const float score =
                                __fadd_rn(cj, __fmul_rn(-2.0f, acc[mt][nt][2 * h + j]));
                            if (score < best[mt][h]) {
                                best[mt][h] = score;
                                idx[mt][h] = col;
                            }
                        }
                }
            }
        }
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                float bv = best[mt][h];
                int i = idx[mt][h];
#pragma unroll
                for (int off = 1; off < 4; off <<= 1) {
                    const float ob = __shfl_xor_sync(0xffffffffu, bv, off);
                    const int oi = __shfl_xor_sync(0xffffffffu, i, off);
                    if (ob < bv || (ob == bv && oi < i)) {
                        bv = ob;
                        i = oi;
                    }
                }
                if (i >= p.num_centroids) i = 0;  // every score NaN: as the CPU, centroid 0
                const int r = mt * 16 + h * 8 + gq;
                const float xr = __shfl_sync(0xffffffffu, my_xn, r);
                if (tq == 0 && row0 + r < p.tokens) {
                    const int64_t out = g * p.tokens + row0 + r;
                    if (p.ids != nullptr) {
                        p.ids[out] = i;
                    } else {
                        p.ids_u8[out] = static_cast<uint8_t>(i);
                    }
                    if (p.dist != nullptr) p.dist[out] = fmaxf(__fadd_rn(bv, xr), 0.0f);
                }
            }
    }
    cp_async_wait_all();  // nothing left in flight at exit
}

template <int D>
cudaError_t launch_assign_resident(const AssignParams& p, cudaStream_t stream) {
    using Sh = ResidentShape<D>;
    const size_t smem = resident_smem_bytes<D>(p.num_centroids);
    cudaError_t err =
        cudaFuncSetAttribute(assign_resident_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem));
    if (err != cudaSuccess) return err;
    int device = 0, sms = 0;
    if ((err = cudaGetDevice(&device)) != cudaSuccess ||
        (err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) !=
            cudaSuccess) {
        return err;
    }
    // One block per SM (the codebook takes most of its shared memory), one wave: a group gets
    // SMs / groups blocks, never more than it has work for.
    const int64_t tiles = (p.tokens + Sh::kTok - 1) / Sh::kTok;
    const int64_t most = (tiles + Sh::kWarps - 1) / Sh::kWarps;
    const int64_t per_group = std::max<int64_t>(1, std::min<int64_t>(most, sms / p.groups));
    const dim3 grid(static_cast<unsigned>(per_group), static_cast<unsigned>(p.groups));
    assign_resident_kernel<D><<<grid, Sh::kWarps * 32, smem, stream>>>(p);
    return cudaGetLastError();
}

// ---- k-means initialisation -------------------------------------------------------------------
//
// One block per group. Warp 0 replays qvg::core::Rng::distinct: every lane runs the same
// xoshiro stream, lane k % 32 keeps the raw draw k; the 64-bit remainders (slow on the GPU) are
// then taken in parallel, and only Floyd's collision check - is draw k among the picks so far? -
// stays sequential, as one ballot over the picks per draw. A rejected raw draw (probability
// about N / 2^64 per draw) shifts the stream: the warp then redoes the group one draw at a time.
// The whole block copies the picked rows.
constexpr int kInitThreads = 256;
constexpr int kMaxCentroids = 256;

__global__ void __launch_bounds__(kInitThreads) init_kernel(KMeansInitParams p) {
    __shared__ uint64_t raw[kMaxCentroids];
    __shared__ int32_t picks[kMaxCentroids];
    const int64_t g = blockIdx.x;
    const int c_count = static_cast<int>(p.num_centroids);
    const int64_t first = p.tokens - c_count;  // Floyd's j runs over first .. tokens - 1
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        Xoshiro256 rng(
            mix_seed(p.seed, static_cast<uint64_t>(p.seed_period > 0 ? g % p.seed_period : g)));
        const Xoshiro256 start = rng;
        for (int k = 0; k < c_count; ++k) {
            const uint64_t r = rng.next();
            if ((k & 31) == lane) raw[k] = r;
        }
        __syncwarp();
        bool rejected = false;
        for (int k = lane; k < c_count; k += 32) {
            const uint64_t bound = static_cast<uint64_t>(first + k) + 1;
            const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
            rejected |= raw[k] >= limit;
            raw[k] %= bound;  // the draw t_k
        }
        if (__any_sync(0xffffffffu, rejected)) {
            rng = start;
            for (int k = 0; k < c_count; ++k) {
                const uint64_t t = rng.below(static_cast<uint64_t>(first + k) + 1);
                if (lane == 0) raw[k] = t;
            }
        }
        __syncwarp();
        if (p.legacy) {
            for (int k = 0; k < c_count; ++k) {
                const int32_t t = static_cast<int32_t>(raw[k]);
                bool hit = false;
                for (int i = lane; i < k; i += 32) hit |= picks[i] == t;
                const bool taken = __any_sync(0xffffffffu, hit);
                if (lane == 0) picks[k] = taken ? static_cast<int32_t>(first + k) : t;
                __syncwarp();
            }
        }
    }
    __syncthreads();
    if (!p.legacy) {
        // Draw k is taken (replaced by first + k) when an earlier pick equals it. Picks are t_i
        // or first + i, so a draw below `first` is taken exactly when an earlier draw has its
        // value (the earliest of those was never taken itself): decided in parallel, one
        // thread per draw. A draw >= first (rare when N >> C) depends on earlier decisions:
        // warp 0 settles those in draw order afterwards, against the final earlier picks.
        for (int k = threadIdx.x; k < c_count; k += kInitThreads) {
            const uint64_t t = raw[k];
            if (static_cast<int64_t>(t) >= first) {
                picks[k] = -1;  // pending
                continue;
            }
            bool dup = false;
            for (int i = 0; i < k; ++i) dup |= raw[i] == t;
            picks[k] = dup ? static_cast<int32_t>(first + k) : static_cast<int32_t>(t);
        }
        __syncthreads();
        if (threadIdx.x < 32) {
            const int lane = threadIdx.x;
            for (int k = 0; k < c_count; ++k) {
                if (picks[k] >= 0) continue;  // the same in every lane
                const int32_t t = static_cast<int32_t>(raw[k]);
                bool hit = false;
                for (int i = lane; i < k; i += 32) hit |= picks[i] == t;
                const bool taken = __any_sync(0xffffffffu, hit);
                __syncwarp();
                if (lane == 0) picks[k] = taken ? static_cast<int32_t>(first + k) : t;
                __syncwarp();
            }
        }
        __syncthreads();
    }
    const int chunks = static_cast<int>(p.dim / kVec);
    const uint4* src = reinterpret_cast<const uint4*>(p.x + g * p.tokens * p.dim);
    uint4* dst = reinterpret_cast<uint4*>(p.centroids + g * p.num_centroids * p.dim);
    for (int i = threadIdx.x; i < c_count * chunks; i += kInitThreads) {
        const int r = i / chunks, k = i % chunks;
        dst[i] = __ldg(src + static_cast<int64_t>(picks[r]) * chunks + k);
    }
}

// ---- Reseeding empty clusters
// --------------------------------------------------------------------
//
// One block per group. The empty clusters and their ranks come from the counts (a ballot per
// warp); a group with none returns at once. Otherwise the E farthest tokens are found by a radix
// select on 64-bit keys (distance bits above the inverted token index: larger key = farther,
// ties to the lower index; distances are >= 0, so their bits order like the values), 8 passes of
// 8 bits over the group's distances, then ranked among themselves (E <= 256) and copied.
constexpr int kReseedThreads = 1024;

__device__ __forceinline__ uint64_t reseed_key(const float* dist, int64_t n) {
    const float d = __fadd_rn(dist[n], 0.0f);  // -0 -> +0
    return (static_cast<uint64_t>(__float_as_uint(d)) << 32) |
           (0xffffffffu - static_cast<uint32_t>(n));
}

__global__ void __launch_bounds__(kReseedThreads) reseed_kernel(KMeansReseedParams p) {
    __shared__ int rank_of[kMaxCentroids];  // empty rank of each cluster, -1 if not empty
    __shared__ int warp_empty[kReseedThreads / 32];
    __shared__ uint32_t hist[256];
    __shared__ uint64_t cand[kMaxCentroids];
    __shared__ int32_t token_of_rank[kMaxCentroids];
    __shared__ uint64_t prefix_s;
    __shared__ uint32_t want_s;
    __shared__ int cand_count;
    const int64_t g = blockIdx.x;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int c_count = static_cast<int>(p.num_centroids);
    const float* dist = p.dist + g * p.tokens;

    const bool empty = tid < c_count && p.counts[g * c_count + tid] == 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, empty);
    if (lane == 0) warp_empty[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < kReseedThreads / 32; ++w) {
        if (w < warp) before += warp_empty[w];
        total += warp_empty[w];
    }
    if (total == 0) return;  // the common case
    if (tid < kMaxCentroids)
        rank_of[tid] = empty ? before + __popc(ballot & ((1u << lane) - 1)) : -1;

    // The total-th largest key, 8 bits at a time from the top.
    uint64_t prefix = 0, mask = 0;
    uint32_t want = static_cast<uint32_t>(total);
    for (int shift = 56; shift >= 0; shift -= 8) {
        if (tid < 256) hist[tid] = 0;
        __syncthreads();
        for (int64_t n = tid; n < p.tokens; n += kReseedThreads) {
            const uint64_t key = reseed_key(dist, n);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            uint32_t above = 0;
            int digit = 255;
            for (; digit > 0; --digit) {
                if (above + hist[digit] >= want) break;
                above += hist[digit];
            }
            prefix_s = prefix | (static_cast<uint64_t>(digit) << shift);
            want_s = want - above;
            cand_count = 0;
        }
        __syncthreads();
        prefix = prefix_s;
        want = want_s;
        mask |= uint64_t{0xff} << shift;
    }
    // Exactly `total` keys are >= the threshold (keys are distinct).
    for (int64_t n = tid; n < p.tokens; n += kReseedThreads) {
        const uint64_t key = reseed_key(dist, n);
        if (key >= prefix) cand[atomicAdd(&cand_count, 1)] = key;
    }
    __syncthreads();
    if (tid < total) {
        const uint64_t key = cand[tid];
        int rank = 0;
        for (int i = 0; i < total; ++i) rank += cand[i] > key;
        token_of_rank[rank] = static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(key));
    }
    __syncthreads();
    const int chunks = static_cast<int>(p.dim / kVec);
    const uint4* src = reinterpret_cast<const uint4*>(p.x + g * p.tokens * p.dim);
    uint4* dst = reinterpret_cast<uint4*>(p.centroids + g * p.num_centroids * p.dim);
    for (int i = tid; i < c_count * chunks; i += kReseedThreads) {
        const int c = i / chunks, k = i % chunks;
        const int rank = rank_of[c];
        if (rank >= 0) dst[i] = src[static_cast<int64_t>(token_of_rank[rank]) * chunks + k];
    }
}

// The range search (ResidualQuantParams::clip_search): candidate 0 is min-max, candidate c > 0
// narrows it to 1 - kClipStep * c. Every operation rounds as the CPU reference's (no
// contraction).

template <bool kAsym>
__device__ __forceinline__ void range_bits(float amax, float lo, float hi, int cand, float inv,
                                           uint8_t& s8, uint8_t& z8) {
    const float shrink = __fsub_rn(1.0f, __fmul_rn(static_cast<float>(cand), kClipStep));
    if constexpr (!kAsym) {
        const float a = cand == 0 ? amax : __fmul_rn(amax, shrink);
        s8 = fp8_encode(fmaxf(__fmul_rn(a, inv), 1e-10f));
        z8 = 0;
    } else {
        float mn = lo, mx = hi;
        if (cand > 0) {
            const float mid = __fmul_rn(__fadd_rn(hi, lo), 0.5f);
            const float half = __fmul_rn(__fmul_rn(__fsub_rn(hi, lo), 0.5f), shrink);
            mn = __fsub_rn(mid, half);
            mx = __fadd_rn(mid, half);
        }
        z8 = fp8_encode(mn);
        s8 = fp8_encode(fmaxf(__fmul_rn(__fsub_rn(mx, mn), inv), 1e-10f));
    }
}

// One value's code (q, before any offset) and its decode without the stage's centroid.
template <bool kAsym, int kQmax>
__device__ __forceinline__ float quantize_value(float v, float s, float z, float& q) {
    if constexpr (kAsym) {
        q = s == 0.0f
                ? 0.0f
                : fminf(fmaxf(round_half_away(__fdiv_rn(__fsub_rn(v, z), s)), 0.0f), float(kQmax));
        return __fadd_rn(__fmul_rn(q, s), z);
    } else {
        if (s == 0.0f) {
            q = v < 0.0f ? -float(kQmax) : float(kQmax);
        } else {
            q = fminf(fmaxf(round_half_away(__fdiv_rn(v, s)), -float(kQmax)), float(kQmax));
        }
        return __fadd_rn(__fmul_rn(q, s), 0.0f);
    }
}

template <int kBits, bool kAsym, bool kStage, bool kBf16In>
__global__ void __launch_bounds__(kThreads) quant_kernel(ResidualQuantParams p) {
    // grid.y = group (b * heads + h); grid.x covers its tokens x (dim / 8) threads, 32-bit math.
    const int threads_per_row = static_cast<int>(p.dim / kVec);
    const unsigned local = blockIdx.x * kThreads + threadIdx.x;
    const unsigned n32 = local / static_cast<unsigned>(threads_per_row);
    const bool active = n32 < p.tokens;
    const int part = static_cast<int>(local % static_cast<unsigned>(threads_per_row));
    const int64_t d0 = static_cast<int64_t>(part) * kVec;
    const int64_t row = static_cast<int64_t>(blockIdx.y) * p.tokens + n32;
    // Inactive lanes still take part in the shuffles, on a valid row.
    const int64_t safe_row = active ? row : static_cast<int64_t>(blockIdx.y) * p.tokens;

    float x[kVec], c[kVec], r[kVec];
    if constexpr (kBf16In) {
        const uint4 xv = *reinterpret_cast<const uint4*>(p.x_bf16 + safe_row * p.dim + d0);
        const uint32_t w[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            x[2 * i] = __uint_as_float(w[i] << 16);
            x[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    } else {
        const float4 xa = *reinterpret_cast<const float4*>(p.x + safe_row * p.dim + d0);
        const float4 xb = *reinterpret_cast<const float4*>(p.x + safe_row * p.dim + d0 + 4);
        x[0] = xa.x;
        x[1] = xa.y;
        x[2] = xa.z;
        x[3] = xa.w;
        x[4] = xb.x;
        x[5] = xb.y;
        x[6] = xb.z;
        x[7] = xb.w;
    }
    if constexpr (kStage) {
        const int64_t g = blockIdx.y;
        const int id = p.ids[safe_row];
        const uint4 cv =
            *reinterpret_cast<const uint4*>(p.centroids + (g * p.num_centroids + id) * p.dim + d0);
        const uint32_t w[4] = {cv.x, cv.y, cv.z, cv.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            c[2 * i] = __uint_as_float(w[i] << 16);
            c[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
#pragma unroll
        for (int i = 0; i < kVec; ++i) r[i] = bf16_round(__fsub_rn(x[i], c[i]));
    } else {
#pragma unroll
        for (int i = 0; i < kVec; ++i) {
            c[i] = 0.0f;
            r[i] = x[i];
        }
    }

    // Group statistics over the G/8 threads of this group (lanes are consecutive and aligned).
    const int lanes = p.group / kVec;
    float a = 0.0f, lo = r[0], hi = r[0];
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
        a = fmaxf(a, fabsf(r[i]));
        lo = fminf(lo, r[i]);
        hi = fmaxf(hi, r[i]);
    }
    for (int off = 1; off < lanes; off <<= 1) {
        a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, off));
        lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, off));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, off));
    }
    constexpr int kQmax = kAsym ? (1 << kBits) - 1 : (1 << (kBits - 1)) - 1;
    const float inv = 1.0f / static_cast<float>(kQmax);
    uint8_t s8, z8;
    range_bits<kAsym>(a, lo, hi, 0, inv, s8, z8);
    if (p.clip_search) {  // uniform over the grid
        // Each range's error: this thread's 8 channels in turn, then the group's threads
        // pairwise; every thread of the group ends with the same sums and the same choice.
        auto error_of = [&](uint8_t cs8, uint8_t cz8) {
            const float cs = fp8_decode(cs8), cz = kAsym ? fp8_decode(cz8) : 0.0f;
            float e = 0.0f;
#pragma unroll
            for (int i = 0; i < kVec; ++i) {
                float q;
                const float d = __fsub_rn(quantize_value<kAsym, kQmax>(r[i], cs, cz, q), r[i]);
                e = __fadd_rn(e, __fmul_rn(d, d));
            }
            for (int off = 1; off < lanes; off <<= 1)
                e = __fadd_rn(e, __shfl_xor_sync(0xffffffffu, e, off));
            return e;
        };
        float best = error_of(s8, z8);
        for (int cand = 1; cand <= kClipSteps; ++cand) {
            uint8_t cs8, cz8;
            range_bits<kAsym>(a, lo, hi, cand, inv, cs8, cz8);
            const float e = error_of(cs8, cz8);
            if (e < best) {
                best = e;
                s8 = cs8;
                z8 = cz8;
            }
        }
    }
    const float s = fp8_decode(s8);
    const float z = kAsym ? fp8_decode(z8) : 0.0f;

    int u[kVec];
    float res_sq = 0.0f, err_sq = 0.0f, in_sq = 0.0f;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
        float q;
        float y = quantize_value<kAsym, kQmax>(r[i], s, z, q);
        u[i] = static_cast<int>(q) + (kAsym ? 0 : kQmax);
        if constexpr (kStage) y = __fadd_rn(y, c[i]);
        const float e = __fsub_rn(x[i], bf16_round(y));
        res_sq = __fadd_rn(res_sq, __fmul_rn(r[i], r[i]));
        err_sq = __fadd_rn(err_sq, __fmul_rn(e, e));
        in_sq = __fadd_rn(in_sq, __fmul_rn(x[i], x[i]));
    }
    for (int off = 1; off < threads_per_row; off <<= 1) {
        res_sq = __fadd_rn(res_sq, __shfl_xor_sync(0xffffffffu, res_sq, off));
        err_sq = __fadd_rn(err_sq, __shfl_xor_sync(0xffffffffu, err_sq, off));
        in_sq = __fadd_rn(in_sq, __shfl_xor_sync(0xffffffffu, in_sq, off));
    }
    if (!active) return;
    if (part % lanes == 0) {
        const int64_t k = row * (p.dim / p.group) + d0 / p.group;
        p.scales[k] = s8;
        if constexpr (kAsym) p.zeros[k] = z8;
    }
    if constexpr (kBits == 2) {
        uint32_t b0 = 0, b1 = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            b0 = (b0 << 2) | static_cast<uint32_t>(u[i]);
            b1 = (b1 << 2) | static_cast<uint32_t>(u[4 + i]);
        }
        *reinterpret_cast<uint16_t*>(p.codes + row * (p.dim / 4) + d0 / 4) =
            static_cast<uint16_t>(b0 | (b1 << 8));
    } else {
        uint32_t w = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i)
            w |= static_cast<uint32_t>((u[2 * i] << 4) | u[2 * i + 1]) << (8 * i);
        *reinterpret_cast<uint32_t*>(p.codes + row * (p.dim / 2) + d0 / 2) = w;
    }
    if (part == 0) {
        if (p.residual_sq) p.residual_sq[row] = res_sq;
        if (p.error_sq) p.error_sq[row] = err_sq;
        if (p.input_sq) p.input_sq[row] = in_sq;
    }
}

template <int kBits, bool kAsym, bool kBf16In>
void launch_quant_input(const ResidualQuantParams& p, dim3 blocks, cudaStream_t stream) {
    if (p.ids != nullptr)
        quant_kernel<kBits, kAsym, true, kBf16In><<<blocks, kThreads, 0, stream>>>(p);
    else
        quant_kernel<kBits, kAsym, false, kBf16In><<<blocks, kThreads, 0, stream>>>(p);
}

template <int kBits, bool kAsym>
void launch_quant(const ResidualQuantParams& p, dim3 blocks, cudaStream_t stream) {
    if (p.x_bf16 != nullptr)
        launch_quant_input<kBits, kAsym, true>(p, blocks, stream);
    else
        launch_quant_input<kBits, kAsym, false>(p, blocks, stream);
}

}  // namespace

cudaError_t kmeans_update(const KMeansUpdateParams& p, cudaStream_t stream) {
    if (p.dim != 64 && p.dim != 128 && p.dim != 256) return cudaErrorInvalidValue;
    if (p.groups == 0 || p.centroids == 0) return cudaSuccess;
    if (p.groups > 65535 || p.centroids > 256) return cudaErrorInvalidValue;
    if (p.x == nullptr || p.ids == nullptr || p.old == nullptr || p.out == nullptr)
        return cudaErrorInvalidValue;
    const uintptr_t align = static_cast<uintptr_t>(p.dim / 32 * 2);  // one lane's vector
    if ((reinterpret_cast<uintptr_t>(p.x) % align) ||
        (reinterpret_cast<uintptr_t>(p.old) % align) ||
        (reinterpret_cast<uintptr_t>(p.out) % align)) {
        return cudaErrorInvalidValue;
    }
    const dim3 grid(static_cast<unsigned>((p.centroids + kUpdateWarps - 1) / kUpdateWarps),
                    static_cast<unsigned>(p.groups));
    static_assert(kListWarps == kUpdateWarps, "one grid for both update kernels");
    switch (p.dim) {
        case 64:
            if (p.legacy)
                update_kernel<64><<<grid, kUpdateWarps * 32, 0, stream>>>(p);
            else
                update_list_kernel<64><<<grid, kListWarps * 32, 0, stream>>>(p);
            break;
        case 128:
            if (p.legacy)
                update_kernel<128><<<grid, kUpdateWarps * 32, 0, stream>>>(p);
            else
                update_list_kernel<128><<<grid, kListWarps * 32, 0, stream>>>(p);
            break;
        default:
            if (p.legacy)
                update_kernel<256><<<grid, kUpdateWarps * 32, 0, stream>>>(p);
            else
                update_list_kernel<256><<<grid, kListWarps * 32, 0, stream>>>(p);
            break;
    }
    return cudaGetLastError();
}

cudaError_t kmeans_assign(const AssignParams& p, cudaStream_t stream) {
    if (p.num_centroids < 1 || p.num_centroids > 256 || p.groups > 65535 ||
        p.tokens > 0x7fffffffLL || (p.ids == nullptr) == (p.ids_u8 == nullptr) || p.x == nullptr ||
        p.centroids == nullptr) {
        return cudaErrorInvalidValue;
    }
    if ((reinterpret_cast<uintptr_t>(p.x) & 15) || (reinterpret_cast<uintptr_t>(p.centroids) & 15))
        return cudaErrorInvalidValue;
    if (p.groups * p.tokens == 0) return cudaSuccess;
    switch (p.dim) {
        case 64:
            return p.legacy ? launch_assign<64>(p, stream) : launch_assign_resident<64>(p, stream);
        case 128:
            return p.legacy ? launch_assign<128>(p, stream)
                            : launch_assign_resident<128>(p, stream);
        case 256:
            return p.legacy ? launch_assign<256>(p, stream)
                            : launch_assign_resident<256>(p, stream);
        default:
            return cudaErrorInvalidValue;
    }
}

cudaError_t residual_quant(const ResidualQuantParams& p, cudaStream_t stream) {
    if (p.dim % kVec != 0 || p.dim / kVec > 32 || (32 % (p.dim / kVec)) != 0)
        return cudaErrorInvalidValue;
    if (p.group % kVec != 0 || p.dim % p.group != 0 || (p.bits != 2 && p.bits != 4))
        return cudaErrorInvalidValue;
    if ((p.x == nullptr) == (p.x_bf16 == nullptr)) return cudaErrorInvalidValue;
    if ((reinterpret_cast<uintptr_t>(p.x) & 15) || (reinterpret_cast<uintptr_t>(p.x_bf16) & 15) ||
        (p.centroids && (reinterpret_cast<uintptr_t>(p.centroids) & 15))) {
        return cudaErrorInvalidValue;
    }
    if (p.asymmetric && p.zeros == nullptr) return cudaErrorInvalidValue;
    if (p.groups * p.tokens == 0) return cudaSuccess;
    const int64_t per_group = p.tokens * (p.dim / kVec);
    if (per_group > 0xffffffffLL - kThreads || p.groups > 65535) return cudaErrorInvalidValue;
    // Whole warps per block (256 threads) so the shuffles always have all lanes.
    const dim3 b(static_cast<unsigned>((per_group + kThreads - 1) / kThreads),
                 static_cast<unsigned>(p.groups));
    if (p.bits == 2) {
        if (p.asymmetric)
            launch_quant<2, true>(p, b, stream);
        else
            launch_quant<2, false>(p, b, stream);
    } else {
        if (p.asymmetric)
            launch_quant<4, true>(p, b, stream);
        else
            launch_quant<4, false>(p, b, stream);
    }
    return cudaGetLastError();
}

cudaError_t kmeans_init(const KMeansInitParams& p, cudaStream_t stream) {
    if (p.dim <= 0 || p.dim % kVec != 0 || p.num_centroids < 1 || p.num_centroids > kMaxCentroids ||
        p.num_centroids > p.tokens || p.tokens > 0x7fffffffLL || p.groups > 0x7fffffffLL ||
        p.x == nullptr || p.centroids == nullptr) {
        return cudaErrorInvalidValue;
    }
    if ((reinterpret_cast<uintptr_t>(p.x) & 15) || (reinterpret_cast<uintptr_t>(p.centroids) & 15))
        return cudaErrorInvalidValue;
    if (p.groups == 0) return cudaSuccess;
    init_kernel<<<static_cast<unsigned>(p.groups), kInitThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

cudaError_t kmeans_reseed(const KMeansReseedParams& p, cudaStream_t stream) {
    if (p.dim <= 0 || p.dim % kVec != 0 || p.num_centroids < 1 || p.num_centroids > kMaxCentroids ||
        p.tokens > 0x7fffffffLL || p.groups > 0x7fffffffLL || p.x == nullptr ||
        p.counts == nullptr || p.dist == nullptr || p.centroids == nullptr) {
        return cudaErrorInvalidValue;
    }
    if ((reinterpret_cast<uintptr_t>(p.x) & 15) || (reinterpret_cast<uintptr_t>(p.centroids) & 15))
        return cudaErrorInvalidValue;
    if (p.groups == 0 || p.tokens == 0) return cudaSuccess;
    reseed_kernel<<<static_cast<unsigned>(p.groups), kReseedThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace qvg::kernels
