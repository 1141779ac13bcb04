#pragma once
// The fused residual + group quantization of the codec's last stage, on either device: the
// kernel parameters and outputs set up once (residual_quant_setup, shared with the CUDA
// bridge), run by the CUDA kernel or by the host loop (kernels::residual_quant_host).

#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/quant_pack.h"
#include "qvg/kernels/qvg_encode.h"

namespace qvg::core::detail {

// Codes/scales/zeros [G, N, k] and per-token sums, fp32 [3, G, N]: sums[0] of r^2, sums[1] of
// (x - decode)^2, sums[2] of x^2 (one tensor, so that one reduction totals all three).
struct ResidualQuantResult {
    GroupQuantized quant;
    at::Tensor sums;
};

// x fp32 or bf16 [G, N, D] contiguous against one stage (ids [G, N], centroids [G, C, D]) or
// none (undefined): allocates the outputs on x's device and fills p; `keep` holds the converted
// ids and centroids p points into. False for inputs the fused kernels do not take.
bool residual_quant_setup(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids,
                          const GroupQuantSpec& spec, ResidualQuantResult& out,
                          kernels::ResidualQuantParams& p, std::vector<at::Tensor>& keep);

// The host loop on LibTorch's intra-op threads; false where it does not apply (then the caller
// takes the ATen path).
bool residual_quant_host(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids,
                         const GroupQuantSpec& spec, ResidualQuantResult& out);

}  // namespace qvg::core::detail
