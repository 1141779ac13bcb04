#pragma once
#include <cuda_runtime_api.h>

#include "qvg/kernels/rope.h"

namespace qvg::kernels {

// Needs dim % 8 == 0, 16-byte aligned rows (pointers and strides multiples of 8 elements) and
// 16-byte aligned table rows. Returns cudaErrorInvalidValue otherwise.
cudaError_t rope_bf16(const RopeParams& p, cudaStream_t stream);

}  // namespace qvg::kernels
