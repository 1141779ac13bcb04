#pragma once
// CUDA launcher for qvg_decode.h (needs the CUDA runtime headers).

#include <cuda_runtime_api.h>

#include "qvg/kernels/qvg_decode.h"

namespace qvg::kernels {

// Pointers are device pointers. Needs dim % 8 == 0, 16-byte aligned centroid rows and output
// rows (out pointer, strides and dim multiples of 8 elements). Returns cudaErrorInvalidValue
// for unusable parameters (see validate()).
cudaError_t qvg_decode_bf16(const QvgDecodeParams& p, cudaStream_t stream);

}  // namespace qvg::kernels
