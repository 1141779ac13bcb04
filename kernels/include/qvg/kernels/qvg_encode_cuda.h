#pragma once
#include <cuda_runtime_api.h>

#include "qvg/kernels/qvg_encode.h"

namespace qvg::kernels {

// dim in {64, 128, 256} (one thread per channel, one block per cluster).
cudaError_t kmeans_update(const KMeansUpdateParams& p, cudaStream_t stream);
// One warp per token.
cudaError_t argmin(const ArgminParams& p, cudaStream_t stream);
// dim % 8 == 0, group in {16, 32, 64, 128} dividing dim, dim / 8 <= 32 threads per token row.
cudaError_t residual_quant(const ResidualQuantParams& p, cudaStream_t stream);

}  // namespace qvg::kernels
