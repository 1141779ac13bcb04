#pragma once
// Structured stand-ins for video-model K/V tensors, for demos, tests and benchmarks when no
// model is at hand. Tokens sit on a (frame, row, column) grid; each belongs to a region
// (Voronoi cells whose centres drift over time, so regions persist across frames), takes its
// region's prototype, adds a field that varies smoothly over space and time, a little noise,
// and per-channel scales with a few large outlier channels and channel offsets (keys have
// stronger ones, as real attention keys do).

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "qvg/core/codec.h"

namespace qvg::core {

struct SyntheticTokens {
    int64_t frames = 24;
    int64_t height = 30;  // token rows per frame
    int64_t width = 52;   // token columns per frame
    int64_t heads = 2;
    int64_t head_dim = 128;
    int64_t regions = 48;
    KVRole role = KVRole::kKey;
    uint64_t seed = 0;
    int64_t first_frame =
        0;  // generate frames first_frame .. first_frame + frames - 1 of the sequence
};

// [1, heads, frames * height * width, head_dim] bf16; tokens ordered frame, row, column.
at::Tensor synthetic_tokens(const SyntheticTokens& spec);

}  // namespace qvg::core
