// QVG span decode on the GPU.
//
// Design: the decode is pure bandwidth (a span of K for one layer reads ~16 MB of codes, scales,
// ids and codebooks and writes ~115 MB of BF16), so each thread produces 8 consecutive channels
// of one token with one 16-byte store, after loading 2 (INT2) or 4 (INT4) code bytes, one scale
// byte and one 16-byte slice of each stage's centroid row. Rows are (b, h, n); D/8 threads share
// a row, so a warp covers 2 rows at D = 128 and its stores are fully coalesced when the output
// is the codec layout, and 256-byte contiguous runs when it is the model's [B, L, H, D] layout.
// Arithmetic mirrors the CPU codec operation for operation (__fmul_rn/__fadd_rn: no FMA
// contraction), so results are bit-identical. Offsets are 64-bit.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

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

template <int kBits, bool kAsym>
__global__ void __launch_bounds__(kThreads) decode_kernel(QvgDecodeParams p) {
    // grid.y = b * heads + h; grid.x covers this head's tokens x (dim / 8) threads. Index math
    // stays 32-bit inside a head (64-bit division costs more than the decode itself).
    const unsigned threads_per_row = static_cast<unsigned>(p.dim / kVec);
    const unsigned local = blockIdx.x * kThreads + threadIdx.x;
    const unsigned n32 = local / threads_per_row;
    if (n32 >= p.tokens) return;
    const int part = static_cast<int>(local % threads_per_row);
    const int64_t n = n32;
    const int64_t bh = blockIdx.y;
    const int64_t b = blockIdx.y / static_cast<unsigned>(p.heads);
    const int64_t h = blockIdx.y % static_cast<unsigned>(p.heads);
    const int64_t row = bh * p.tokens + n;
    const int64_t d0 = static_cast<int64_t>(part) * kVec;

    // Codes of channels d0 .. d0+7: stored values u (offset, unsigned).
    int u[kVec];
    if constexpr (kBits == 2) {
        const uint16_t two =
            *reinterpret_cast<const uint16_t*>(p.codes + row * (p.dim / 4) + d0 / 4);
        const uint32_t b0 = two & 0xff, b1 = two >> 8;  // little-endian: first byte in the low bits
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            u[i] = (b0 >> (6 - 2 * i)) & 3;
            u[4 + i] = (b1 >> (6 - 2 * i)) & 3;
        }
    } else {
        const uint32_t four =
            *reinterpret_cast<const uint32_t*>(p.codes + row * (p.dim / 2) + d0 / 2);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t byte = (four >> (8 * i)) & 0xff;
            u[2 * i] = byte >> 4;
            u[2 * i + 1] = byte & 15;
        }
    }
    const int64_t g = row * (p.dim / p.group) + d0 / p.group;
    const float s = fp8_e4m3_to_float(p.scales[g]);
    float y[kVec];
    if constexpr (kAsym) {
        const float z = fp8_e4m3_to_float(p.zeros[g]);
#pragma unroll
        for (int i = 0; i < kVec; ++i) y[i] = __fadd_rn(__fmul_rn(static_cast<float>(u[i]), s), z);
    } else {
        constexpr int kQmax = (1 << (kBits - 1)) - 1;
#pragma unroll
        for (int i = 0; i < kVec; ++i) {
            y[i] = __fadd_rn(__fmul_rn(static_cast<float>(u[i] - kQmax), s), 0.0f);
        }
    }
    for (int st = 0; st < p.num_stages; ++st) {
        const int id = p.ids[st][bh * p.tokens + n];
        const uint4 c = *reinterpret_cast<const uint4*>(p.centroids[st] +
                                                        (bh * p.num_centroids + id) * p.dim + d0);
        const uint32_t w[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            y[2 * i] = __fadd_rn(y[2 * i], bf16_bits_to_float(w[i] & 0xffff));
            y[2 * i + 1] = __fadd_rn(y[2 * i + 1], bf16_bits_to_float(w[i] >> 16));
        }
    }
    if (p.rope_cos != nullptr) {
        // Round the decode to BF16 first, then rotate as the RoPE kernel rotates BF16 keys.
        const float4 c = *reinterpret_cast<const float4*>(p.rope_cos + n * (p.dim / 2) + d0 / 2);
        const float4 sn = *reinterpret_cast<const float4*>(p.rope_sin + n * (p.dim / 2) + d0 / 2);
        const float cs[4] = {c.x, c.y, c.z, c.w};
        const float ss[4] = {sn.x, sn.y, sn.z, sn.w};
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
    uint16_t* out = p.out + b * p.out_stride_b + n * p.out_stride_n + h * p.out_stride_h + d0;
    *reinterpret_cast<uint4*>(out) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
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
    const int64_t per_head = p.tokens * (p.dim / kVec);
    if (per_head > 0xffffffffLL - kThreads || p.batch * p.heads > 65535)
        return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>((per_head + kThreads - 1) / kThreads),
                    static_cast<unsigned>(p.batch * p.heads));
    if (p.bits == 2) {
        if (p.asymmetric)
            decode_kernel<2, true><<<grid, kThreads, 0, stream>>>(p);
        else
            decode_kernel<2, false><<<grid, kThreads, 0, stream>>>(p);
    } else {
        if (p.asymmetric)
            decode_kernel<4, true><<<grid, kThreads, 0, stream>>>(p);
        else
            decode_kernel<4, false><<<grid, kThreads, 0, stream>>>(p);
    }
    return cudaGetLastError();
}

}  // namespace qvg::kernels
