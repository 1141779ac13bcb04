#pragma once
// Private to the codec implementation files.

#include <memory>

#include "qvg/core/codec.h"

namespace qvg::core::detail {

std::unique_ptr<Codec> make_codec(const CodecConfig& config);

// QVG: folds stages keep.. into the scalar residual and re-quantizes it.
void requantize_without_stages(EncodedSpan& span, int keep);

int64_t kivi_expected_bytes(const CodecConfig& c, KVRole role, int64_t batch, int64_t heads,
                            int64_t tokens, int64_t dim);

}  // namespace qvg::core::detail
