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
    // grid.y = batch; grid.x covers tokens x heads x (dim / 8) with 32-bit index math.
    const unsigned parts = static_cast<unsigned>(p.dim / 8);
    const unsigned per_token = parts * static_cast<unsigned>(p.heads);
    const unsigned local = blockIdx.x * kThreads + threadIdx.x;
    const unsigned l32 = local / per_token;
    if (l32 >= p.tokens) return;
    const unsigned rem = local % per_token;
    const int64_t h = rem / parts;
    const int64_t part = rem % parts;
    const int64_t l = l32;
    const int64_t b = blockIdx.y;
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
    const int64_t per_batch = p.tokens * p.heads * (p.dim / 8);
    if (per_batch * p.batch == 0) return cudaSuccess;
    if (per_batch > 0xffffffffLL - kThreads || p.batch > 65535) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>((per_batch + kThreads - 1) / kThreads),
                    static_cast<unsigned>(p.batch));
    rope_kernel<<<grid, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace qvg::kernels
