#pragma once
// Entry points into the CUDA kernels of qvg_kernels (implemented in core/src/cuda/, built only
// with QVG_HAVE_CUDA). Each returns "not applicable" (false / undefined) for tensors the kernel
// does not take, so the caller falls back to the ATen path; kernel failures throw.

#ifdef QVG_HAVE_CUDA

#include <utility>

#include <ATen/core/Tensor.h>

#include "qvg/core/kmeans.h"
#include "qvg/core/quant_pack.h"
#include "residual_quant.h"

namespace qvg::core::detail {

// RoPE of BF16 x [B, L, H, D] with per-token cos/sin [L, 1, D/2] fp32 into out (may be a view).
bool rope_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
               const at::Tensor& out);

// Deterministic k-means centroid update: x bf16 [G, N, D] contiguous, ids [G, N], old [G, C, D].
at::Tensor kmeans_update_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& old);

// Nearest centroid on tensor cores: x bf16 [G, N, D], centroids [G, C, D] -> ids int64 [G, N] and
// squared distances fp32 [G, N]; D in {64, 128, 256} and C <= 256, else both undefined.
std::pair<at::Tensor, at::Tensor> assign_cuda(const at::Tensor& x, const at::Tensor& centroids);

// The whole of kmeans() on the GPU for bf16 x [G, N, D] (contiguous, D in {64, 128, 256},
// C <= 256): initialisation, assignments, updates and reseeding in kernels, buffers reused
// across iterations, no host synchronisation (but for the convergence check, which only runs
// with 3 or more iterations). Same results as the generic path. False where it does not apply.
bool kmeans_cuda(const at::Tensor& xb, const KMeansOptions& options, const at::Tensor& warm_start,
                 KMeansResult& out);

// C distinct tokens of every group of bf16 x [G, N, D] drawn from the seed (kernels/rng.h), as
// kmeans() starts; undefined where the kernel does not apply.
at::Tensor kmeans_init_cuda(const at::Tensor& xb, int64_t centroids, uint64_t seed,
                            int64_t seed_period = 0);

// Fused residual + group quantization + packing of x fp32 or bf16 [G, N, D] against one stage
// (ids uint8 [G, N], centroids bf16 [G, C, D]) or none (undefined): residual_quant.h.
bool residual_quant_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids,
                         const GroupQuantSpec& spec, ResidualQuantResult& out);

}  // namespace qvg::core::detail

#endif
