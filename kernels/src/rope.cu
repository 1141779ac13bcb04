// RoPE on BF16 keys/queries: one thread rotates 4 channel pairs (16 bytes in, 16 bytes out, two
// float4 table loads). Pure bandwidth; products and sums use __fmul_rn/__fadd_rn/__fsub_rn so
// the result is bit-identical to the ATen expression it replaces.

#include <cuda_bf16.h>

#include <cstring>

#include "qvg/kernels/rope_cuda.h"

namespace qvg::kernels {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ uint32_t pack(float a, float b) {
    const __nv_bfloat16 x = __float2bfloat16_rn(a), y = __float2bfloat16_rn(b);
    uint16_t xb, yb;
    memcpy(&xb, &x, 2);
    memcpy(&yb, &y, 2);
    return static_cast<uint32_t>(xb) | (static_cast<uint32_t>(yb) << 16);
}

__global__ void __launch_bounds__(kThreads) rope_kernel(RopeParams p) {
    const int64_t parts = p.dim / 8;
    const int64_t tid = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
    const int64_t total = p.batch * p.tokens * p.heads * parts;
    if (tid >= total) return;
    const int64_t part = tid % parts;
    int64_t rest = tid / parts;
    const int64_t h = rest % p.heads;
    rest /= p.heads;
    const int64_t l = rest % p.tokens;
    const int64_t b = rest / p.tokens;
    const int64_t d0 = part * 8;
    const uint4 xv = *reinterpret_cast<const uint4*>(p.x + b * p.x_stride_b + l * p.x_stride_l +
                                                     h * p.x_stride_h + d0);
    const float4 c = *reinterpret_cast<const float4*>(p.cos + l * (p.dim / 2) + d0 / 2);
    const float4 s = *reinterpret_cast<const float4*>(p.sin + l * (p.dim / 2) + d0 / 2);
    const uint32_t w[4] = {xv.x, xv.y, xv.z, xv.w};
    const float cs[4] = {c.x, c.y, c.z, c.w};
    const float ss[4] = {s.x, s.y, s.z, s.w};
    uint32_t o[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float re = lo(w[i]), im = hi(w[i]);
        const float a = __fsub_rn(__fmul_rn(re, cs[i]), __fmul_rn(im, ss[i]));
        const float e = __fadd_rn(__fmul_rn(re, ss[i]), __fmul_rn(im, cs[i]));
        o[i] = pack(a, e);
    }
    *reinterpret_cast<uint4*>(p.out + b * p.out_stride_b + l * p.out_stride_l + h * p.out_stride_h +
                              d0) = make_uint4(o[0], o[1], o[2], o[3]);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

}  // namespace

cudaError_t rope_bf16(const RopeParams& p, cudaStream_t stream) {
    if (p.dim <= 0 || p.dim % 8 != 0 || !p.x || !p.out || !p.cos || !p.sin)
        return cudaErrorInvalidValue;
    if (!aligned16(p.x) || !aligned16(p.out) || !aligned16(p.cos) || !aligned16(p.sin))
        return cudaErrorInvalidValue;
    for (int64_t st : {p.x_stride_b, p.x_stride_l, p.x_stride_h, p.out_stride_b, p.out_stride_l,
                       p.out_stride_h}) {
        if (st % 8 != 0) return cudaErrorInvalidValue;
    }
    const int64_t total = p.batch * p.tokens * p.heads * (p.dim / 8);
    if (total == 0) return cudaSuccess;
    const int64_t blocks = (total + kThreads - 1) / kThreads;
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    rope_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace qvg::kernels
