#pragma once
// Private to the codec implementation files.

#include <memory>

#include "qvg/core/codec.h"

namespace qvg::core::detail {

std::unique_ptr<Codec> make_codec(const CodecConfig& config);

// QVG: folds stages keep.. into the scalar residual and re-quantizes it.
void requantize_without_stages(EncodedSpan& span, int keep);

// Fused CUDA decode of a QVG/RTN span into out ([B, N, H, D] BF16 view on the GPU). Returns
// false when the span or the view does not qualify (the caller then takes the generic path).
bool decode_span_cuda(const EncodedSpan& span, const at::Tensor& out, const RopeAngles* rope,
                      const DecodeLaunch* launch);

// INT4 codebooks: each centroid of `dim` values one asymmetric group (FP8 scale and zero).
inline GroupQuantSpec int4_codebook_spec(int64_t dim) {
    return {4, static_cast<int>(dim), true, false};
}

int64_t kivi_expected_bytes(const CodecConfig& c, KVRole role, int64_t batch, int64_t heads,
                            int64_t tokens, int64_t dim);

}  // namespace qvg::core::detail
