#pragma once
#include <cuda_runtime_api.h>

#include "qvg/kernels/qvg_encode.h"

namespace qvg::kernels {

// dim in {64, 128, 256} (two channels per thread, one block per cluster).
cudaError_t kmeans_update(const KMeansUpdateParams& p, cudaStream_t stream);
// dim in {64, 128, 256}, 1..256 centroids, x and centroids 16-byte aligned (Hopper and newer:
// up to 200 KiB of shared memory per block at dim 256).
cudaError_t kmeans_assign(const AssignParams& p, cudaStream_t stream);
// dim % 8 == 0, group in {16, 32, 64, 128} dividing dim, dim / 8 <= 32 threads per token row.
cudaError_t residual_quant(const ResidualQuantParams& p, cudaStream_t stream);
// dim % 8 == 0, 1 <= C <= min(256, N), 16-byte aligned x and centroids.
cudaError_t kmeans_init(const KMeansInitParams& p, cudaStream_t stream);
// dim % 8 == 0, C <= 256, N < 2^31, 16-byte aligned x and centroids.
cudaError_t kmeans_reseed(const KMeansReseedParams& p, cudaStream_t stream);

}  // namespace qvg::kernels
