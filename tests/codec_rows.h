#pragma once
// Shared by the CPU and GPU codec tests: each row (walk) of a batch [B, H, N, D] is encoded as
// it would be alone, cold and warm-started from the previous span.

#include <utility>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/codec.h"

namespace qvg::test {

inline void expect_rows_encode_alone(const core::Codec& codec, const at::Tensor& x,
                                     const at::Tensor& next) {
    const core::EncodedSpan both = codec.encode(x, {core::KVRole::kKey, 3, nullptr});
    const core::EncodedSpan both_next = codec.encode(next, {core::KVRole::kKey, 4, &both});
    for (int64_t row = 0; row < x.size(0); ++row) {
        const core::EncodedSpan alone =
            codec.encode(x.narrow(0, row, 1).contiguous(), {core::KVRole::kKey, 3, nullptr});
        const core::EncodedSpan alone_next = codec.encode(next.narrow(0, row, 1).contiguous(),
                                                          {core::KVRole::kKey, 4, &alone});
        for (const auto& [b, a] : {std::pair{&both, &alone}, std::pair{&both_next, &alone_next}}) {
            EXPECT_TRUE(at::equal(b->stages[0].ids.narrow(0, row, 1), a->stages[0].ids))
                << "row " << row;
            EXPECT_TRUE(
                at::equal(b->stages[0].centroids.narrow(0, row, 1), a->stages[0].centroids))
                << "row " << row;
            EXPECT_TRUE(at::equal(b->quant.codes.narrow(0, row, 1), a->quant.codes))
                << "row " << row;
        }
    }
}

}  // namespace qvg::test
