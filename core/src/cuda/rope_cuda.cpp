// Bridges WanRope to the fused RoPE kernel of qvg_kernels.

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda_bridge.h"
#include "qvg/core/error.h"
#include "qvg/kernels/rope_cuda.h"

namespace qvg::core::detail {

bool rope_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
               const at::Tensor& out) {
    if (!x.is_cuda() || x.scalar_type() != at::kBFloat16 || out.scalar_type() != at::kBFloat16)
        return false;
    if (x.stride(3) != 1 || out.stride(3) != 1 || !cos.is_contiguous() || !sin.is_contiguous())
        return false;
    if (cos.scalar_type() != at::kFloat || sin.scalar_type() != at::kFloat || !cos.is_cuda())
        return false;
    kernels::RopeParams p;
    p.x = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.cos = cos.data_ptr<float>();
    p.sin = sin.data_ptr<float>();
    p.batch = x.size(0);
    p.tokens = x.size(1);
    p.heads = x.size(2);
    p.dim = x.size(3);
    p.x_stride_b = x.stride(0);
    p.x_stride_l = x.stride(1);
    p.x_stride_h = x.stride(2);
    p.out_stride_b = out.stride(0);
    p.out_stride_l = out.stride(1);
    p.out_stride_h = out.stride(2);
    const c10::cuda::CUDAGuard guard(x.device());
    const cudaError_t err = kernels::rope_bf16(p, at::cuda::getCurrentCUDAStream());
    if (err == cudaErrorInvalidValue) {
        (void)cudaGetLastError();
        return false;
    }
    QVG_CHECK(err == cudaSuccess, "RoPE kernel failed: {}", cudaGetErrorString(err));
    return true;
}

}  // namespace qvg::core::detail
