// QVG span encode kernels.
//
// kmeans_update: one block per (cluster, group), one thread per channel. Each thread walks the
// cluster's members in token order and sums in fp32 - the CPU codec's index_add order - so the
// new centroids are bit-identical to the CPU's for the same ids, and no float atomics are used
// (the reference's atomics make its k-means nondeterministic).
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

#include <cstring>

#include "qvg/kernels/qvg_encode_cuda.h"

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

__global__ void update_kernel(KMeansUpdateParams p) {
    const int64_t c = blockIdx.x;
    const int64_t g = blockIdx.y;
    const int64_t d = threadIdx.x;
    const int64_t begin = p.offsets[g * (p.centroids + 1) + c];
    const int64_t end = p.offsets[g * (p.centroids + 1) + c + 1];
    const int64_t slot = (g * p.centroids + c) * p.dim + d;
    if (end == begin) {
        p.out[slot] = p.old[slot];
        return;
    }
    float sum = 0.0f;
    const int64_t* order = p.order + g * p.tokens;
    const float* x = p.x + g * p.tokens * p.dim + d;
    for (int64_t m = begin; m < end; ++m) sum = __fadd_rn(sum, x[order[m] * p.dim]);
    const __nv_bfloat16 mean = __float2bfloat16_rn(__fdiv_rn(sum, static_cast<float>(end - begin)));
    uint16_t bits;
    memcpy(&bits, &mean, 2);
    p.out[slot] = bits;
}

__global__ void __launch_bounds__(kThreads) argmin_kernel(ArgminParams p) {
    const int lane = threadIdx.x & 31;
    const unsigned n = blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5);
    if (n >= p.tokens) return;  // whole warps leave together
    const int64_t g = blockIdx.y;
    const float* dot = p.dot + (g * p.tokens + n) * p.centroids;
    const float* cn = p.cnorm2 + g * p.centroids;
    float best = INFINITY;
    int idx = 0x7fffffff;
    for (int c = lane; c < p.centroids; c += 32) {
        const float score = __fadd_rn(cn[c], __fmul_rn(-2.0f, dot[c]));
        if (score < best) {  // ascending c per lane: keeps the lowest index on ties
            best = score;
            idx = c;
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, off);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, off);
        if (ob < best || (ob == best && oi < idx)) {
            best = ob;
            idx = oi;
        }
    }
    if (lane == 0) {
        p.ids[g * p.tokens + n] = idx;
        p.dist[g * p.tokens + n] = fmaxf(__fadd_rn(best, p.xnorm2[g * p.tokens + n]), 0.0f);
    }
}

template <int kBits, bool kAsym, bool kStage>
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
    float s, z = 0.0f;
    uint8_t s8, z8 = 0;
    if constexpr (kAsym) {
        z8 = fp8_encode(lo);
        s8 = fp8_encode(fmaxf(__fmul_rn(__fsub_rn(hi, lo), inv), 1e-10f));
        z = fp8_decode(z8);
    } else {
        s8 = fp8_encode(fmaxf(__fmul_rn(a, inv), 1e-10f));
    }
    s = fp8_decode(s8);

    int u[kVec];
    float res_sq = 0.0f, err_sq = 0.0f;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
        float q, y;
        if constexpr (kAsym) {
            q = s == 0.0f ? 0.0f
                          : fminf(fmaxf(round_half_away(__fdiv_rn(__fsub_rn(r[i], z), s)), 0.0f),
                                  float(kQmax));
            u[i] = static_cast<int>(q);
            y = __fadd_rn(__fmul_rn(q, s), z);
        } else {
            if (s == 0.0f) {
                q = r[i] < 0.0f ? -float(kQmax) : float(kQmax);
            } else {
                q = fminf(fmaxf(round_half_away(__fdiv_rn(r[i], s)), -float(kQmax)), float(kQmax));
            }
            u[i] = static_cast<int>(q) + kQmax;
            y = __fadd_rn(__fmul_rn(q, s), 0.0f);
        }
        if constexpr (kStage) y = __fadd_rn(y, c[i]);
        const float e = __fsub_rn(x[i], bf16_round(y));
        res_sq = __fadd_rn(res_sq, __fmul_rn(r[i], r[i]));
        err_sq = __fadd_rn(err_sq, __fmul_rn(e, e));
    }
    for (int off = 1; off < threads_per_row; off <<= 1) {
        res_sq = __fadd_rn(res_sq, __shfl_xor_sync(0xffffffffu, res_sq, off));
        err_sq = __fadd_rn(err_sq, __shfl_xor_sync(0xffffffffu, err_sq, off));
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
    }
}

template <int kBits, bool kAsym>
void launch_quant(const ResidualQuantParams& p, dim3 blocks, cudaStream_t stream) {
    if (p.ids != nullptr)
        quant_kernel<kBits, kAsym, true><<<blocks, kThreads, 0, stream>>>(p);
    else
        quant_kernel<kBits, kAsym, false><<<blocks, kThreads, 0, stream>>>(p);
}

}  // namespace

cudaError_t kmeans_update(const KMeansUpdateParams& p, cudaStream_t stream) {
    if (p.dim != 64 && p.dim != 128 && p.dim != 256) return cudaErrorInvalidValue;
    if (p.groups == 0 || p.centroids == 0) return cudaSuccess;
    if (p.groups > 65535 || p.centroids > 0x7fffffff) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>(p.centroids), static_cast<unsigned>(p.groups));
    update_kernel<<<grid, static_cast<unsigned>(p.dim), 0, stream>>>(p);
    return cudaGetLastError();
}

cudaError_t argmin(const ArgminParams& p, cudaStream_t stream) {
    if (p.groups * p.tokens == 0) return cudaSuccess;
    if (p.centroids < 1 || p.groups > 65535 || p.tokens > 0x7fffffffLL)
        return cudaErrorInvalidValue;
    constexpr int kWarps = kThreads / 32;
    const dim3 grid(static_cast<unsigned>((p.tokens + kWarps - 1) / kWarps),
                    static_cast<unsigned>(p.groups));
    argmin_kernel<<<grid, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

cudaError_t residual_quant(const ResidualQuantParams& p, cudaStream_t stream) {
    if (p.dim % kVec != 0 || p.dim / kVec > 32 || (32 % (p.dim / kVec)) != 0)
        return cudaErrorInvalidValue;
    if (p.group % kVec != 0 || p.dim % p.group != 0 || (p.bits != 2 && p.bits != 4))
        return cudaErrorInvalidValue;
    if ((reinterpret_cast<uintptr_t>(p.x) & 15) ||
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

}  // namespace qvg::kernels
