#pragma once
// CUDA launcher for qvg_decode.h (needs the CUDA runtime headers).

#include <cuda_runtime_api.h>

#include "qvg/kernels/qvg_decode.h"

namespace qvg::kernels {

// Pointers are device pointers. Needs dim % 8 == 0, 16-byte aligned centroid rows and output
// rows (out pointer, strides and dim multiples of 8 elements). Returns cudaErrorInvalidValue
// for unusable parameters (see validate()).
cudaError_t qvg_decode_bf16(const QvgDecodeParams& p, cudaStream_t stream);

// Device pointers; out 4-byte aligned. cudaErrorInvalidValue for an odd dim or null pointers.
cudaError_t widen_int4_codebook(const Int4CodebookParams& p, cudaStream_t stream);

// Ceilings for `qvg kernel-bench`: the output of a decode written without reading or decoding
// anything (zeros), to tell what any kernel writing those bytes can reach.
enum class QvgWriteCeiling {
    // 16-byte streaming stores (st.global.cs) with the default launch's grid and thread layout
    // (a grid row per head, 32 interleaved channels per thread where dim allows).
    kDefaultLayout,
    // 16-byte streaming stores, consecutive threads on consecutive 16 bytes of the output (4 per
    // thread, 4 KiB apart); needs a packed output.
    kLinear,
    // cudaMemsetAsync of the output; needs a packed output.
    kMemset,
};

// Uses p.out, the output strides and batch, heads, tokens, dim (dim % 8 == 0, 16-byte aligned
// rows); packed = out_stride_h == dim, out_stride_n == heads * dim and out_stride_b == tokens *
// heads * dim. Returns cudaErrorInvalidValue where the ceiling does not apply.
cudaError_t qvg_decode_write_ceiling(const QvgDecodeParams& p, QvgWriteCeiling kind,
                                     cudaStream_t stream);

}  // namespace qvg::kernels
