// Wan's 3D RoPE against a float64 complex-number reference written from the fixture's formula:
// freqs = cat(rope_params(1024, d - 4*(d//6)), rope_params(1024, 2*(d//6)) x 2), adjacent
// channel pairs (2i, 2i+1) as (real, imag).

#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/error.h"
#include "qvg/core/wan_rope.h"

namespace qvg::core {
namespace {

// [n, dim/2] complex128 exp(i * pos * 10000^(-2k/dim)).
at::Tensor rope_params(int64_t n, int64_t dim) {
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    at::Tensor inv = 1.0 / at::pow(10000.0, at::arange(0, dim, 2, f64) / static_cast<double>(dim));
    at::Tensor angle = at::outer(at::arange(n, f64), inv);
    return at::polar(at::ones_like(angle), angle);
}

at::Tensor reference(const at::Tensor& x, const std::vector<int64_t>& frames, int64_t rows,
                     int64_t cols) {
    const int64_t d = x.size(3);
    const at::Tensor ft = rope_params(1024, d - 4 * (d / 6));
    const at::Tensor fs = rope_params(1024, 2 * (d / 6));
    std::vector<at::Tensor> per_token;
    for (int64_t f : frames) {
        for (int64_t h = 0; h < rows; ++h) {
            for (int64_t w = 0; w < cols; ++w) {
                per_token.push_back(at::cat({ft[f], fs[h], fs[w]}));
            }
        }
    }
    const at::Tensor freqs = at::stack(per_token).unsqueeze(1);  // [L, 1, d/2]
    at::Tensor xc = at::view_as_complex(x.to(at::kDouble).unflatten(-1, {d / 2, 2}).contiguous());
    return at::view_as_real(xc * freqs).flatten(-2);
}

TEST(WanRope, SplitsPairsLikeWan) {
    WanRope wan(128, at::kCPU);
    EXPECT_EQ(wan.time_pairs(), 22);
    EXPECT_EQ(wan.space_pairs(), 21);
    WanRope tiny(32, at::kCPU);
    EXPECT_EQ(tiny.time_pairs(), 6);  // fixture: rope_split_complex_pairs_t_h_w [6, 5, 5]
    EXPECT_EQ(tiny.space_pairs(), 5);
}

TEST(WanRope, MatchesTheComplexReference) {
    at::manual_seed(0);  // fixed inputs: the one-ulp allowance below is checked on known data
    for (int64_t d : {32, 128, 48}) {
        WanRope rope(d, at::kCPU);
        for (const std::vector<int64_t>& frames :
             {std::vector<int64_t>{0, 1, 2}, std::vector<int64_t>{0, 1, 7, 8, 1023},
              std::vector<int64_t>{}}) {
            const int64_t rows = 3, cols = 5;
            const int64_t tokens = static_cast<int64_t>(frames.size()) * rows * cols;
            const at::Tensor x = at::randn({2, tokens, 3, d});
            const at::Tensor got = WanRope::apply(x, rope.angles(frames, rows, cols));
            if (tokens == 0) {
                EXPECT_EQ(got.numel(), 0);
                continue;
            }
            const at::Tensor ref = reference(x, frames, rows, cols);
            EXPECT_LE((got.to(at::kDouble) - ref).abs().max().item<double>(), 5e-6) << "d " << d;
            // bf16 in, fp32 rotation, one rounding out.
            const at::Tensor xb = x.to(at::kBFloat16);
            const at::Tensor gb = WanRope::apply(xb, rope.angles(frames, rows, cols));
            EXPECT_EQ(gb.scalar_type(), at::kBFloat16);
            // Rounding the fp32 instead of the float64 product to bf16 can flip a tie-near
            // rounding: allow rare one-ulp differences.
            const at::Tensor rb = reference(xb, frames, rows, cols).to(at::kBFloat16);
            const at::Tensor diff = (gb.to(at::kFloat) - rb.to(at::kFloat)).abs();
            const at::Tensor ulp = rb.to(at::kFloat).abs() * (1.0 / 128) + 1e-30;
            EXPECT_TRUE(at::all(diff <= ulp).item<bool>()) << "d " << d;
            EXPECT_LE((diff > 0).sum().item<int64_t>() * 1000, diff.numel()) << "d " << d;
        }
    }
}

TEST(WanRope, WritesIntoSlicesAndRangesEqualLists) {
    WanRope rope(32, at::kCPU);
    const at::Tensor x = at::randn({1, 16, 2, 32});
    at::Tensor buffer = at::zeros({1, 24, 2, 32});
    WanRope::apply_into(x, rope.angles(5, 2, 2, 4), buffer.narrow(1, 8, 16));
    EXPECT_TRUE(at::equal(buffer.narrow(1, 8, 16), WanRope::apply(x, rope.angles({5, 6}, 2, 4))));
    EXPECT_TRUE(at::equal(buffer.narrow(1, 0, 8), at::zeros({1, 8, 2, 32})));
}

TEST(WanRope, RejectsPositionsOutsideTheTable) {
    WanRope rope(32, at::kCPU, 16);
    EXPECT_THROW(rope.angles({15, 16}, 2, 2), Error);
    EXPECT_THROW(rope.angles({-1}, 2, 2), Error);
    EXPECT_THROW(rope.angles({0}, 17, 2), Error);
    EXPECT_THROW(WanRope(31, at::kCPU), Error);
    const at::Tensor x = at::randn({1, 8, 2, 32});
    EXPECT_THROW(WanRope::apply(x, rope.angles({0, 1, 2}, 2, 2)), Error);
}

}  // namespace
}  // namespace qvg::core
