#pragma once
// The fused decode's parameters for a codec span, shared by the CUDA decode
// (cuda/span_decode_cuda.cpp) and the host decode (span_decode_host.cpp).

#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/codec.h"
#include "qvg/kernels/qvg_decode.h"

namespace qvg::core::detail {

// Fills p's inputs and shape from a QVG/RTN span held per token (codes, scales, zeros, ids and
// codebooks contiguous). BF16 and FP8 codebooks are read as they are; INT4 ones are widened to
// BF16 by `widen_int4` (kept alive in `widened`). False where the kernels do not take the span:
// another codec, keys per channel, a span not held in BF16, parts not contiguous. The output
// and RoPE fields are the caller's.
bool span_decode_params(const EncodedSpan& span, kernels::QvgDecodeParams& p,
                        std::vector<at::Tensor>& widened,
                        const std::function<at::Tensor(const SpanStage&)>& widen_int4);

// An INT4 codebook [B, H, C, D / 2] (with its contiguous FP8 scales and zeros) widened to BF16
// [B, H, C, D] on its device by `widen` (kernels::widen_int4_codebook or its reference), given
// the parameters for a new output tensor, which is returned: centroids_bf16's values.
at::Tensor widen_int4_codebook(
    const SpanStage& st, const std::function<void(const kernels::Int4CodebookParams&)>& widen);

// The span decoded on the host into out, a CPU [B, N, H, D] view (BF16, or float32 taking the
// BF16 values widened) whose last dimension is contiguous, keys rotated by `rope` when given:
// the bits of the codec's decode followed by WanRope::apply_into, in one pass. False where
// span_decode_params, the view or the angles do not qualify.
bool decode_span_host(const EncodedSpan& span, const at::Tensor& out, const RopeAngles* rope);

}  // namespace qvg::core::detail
