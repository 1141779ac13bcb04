#pragma once
// Entry points into the CUDA kernels of qvg_kernels (implemented in core/src/cuda/, built only
// with QVG_HAVE_CUDA). Each returns "not applicable" (false / undefined) for tensors the kernel
// does not take, so the caller falls back to the ATen path; kernel failures throw.

#ifdef QVG_HAVE_CUDA

#include <utility>

#include <ATen/core/Tensor.h>

#include "qvg/core/quant_pack.h"

namespace qvg::core::detail {

// RoPE of BF16 x [B, L, H, D] with per-token cos/sin [L, 1, D/2] fp32 into out (may be a view).
bool rope_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
               const at::Tensor& out);

// Deterministic k-means centroid update: x bf16 [G, N, D] contiguous, ids [G, N], old [G, C, D].
at::Tensor kmeans_update_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& old);

// Nearest centroid on tensor cores: x bf16 [G, N, D], centroids [G, C, D] -> ids int64 [G, N] and
// squared distances fp32 [G, N]; D in {64, 128, 256} and C <= 256, else both undefined.
std::pair<at::Tensor, at::Tensor> assign_cuda(const at::Tensor& x, const at::Tensor& centroids);

// Fused residual + group quantization + packing of x fp32 or bf16 [G, N, D] against one stage
// (ids uint8 [G, N], centroids bf16 [G, C, D]) or none (undefined). Fills codes/scales/zeros
// and returns per-token sums of r^2 and of (x - decode)^2 as fp32 [G, N] tensors.
struct ResidualQuantResult {
    GroupQuantized quant;
    at::Tensor residual_sq;
    at::Tensor error_sq;
};
bool residual_quant_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids,
                         const GroupQuantSpec& spec, ResidualQuantResult& out);

}  // namespace qvg::core::detail

#endif
