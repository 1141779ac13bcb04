#include "qvg/core/wan_rope.h"

#include "cuda_bridge.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "qvg/core/error.h"

namespace qvg::core {

namespace {

// cos/sin of pos * 10000^(-2k/(2*pairs)) for pos < positions, k < pairs, in float64.
std::pair<at::Tensor, at::Tensor> angle_table(int64_t positions, int64_t pairs) {
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    at::Tensor inv_freq =
        at::pow(10000.0, at::arange(0, 2 * pairs, 2, f64).div(static_cast<double>(2 * pairs)))
            .reciprocal();                                               // [pairs]
    at::Tensor angle = at::outer(at::arange(positions, f64), inv_freq);  // [positions, pairs]
    return {at::cos(angle), at::sin(angle)};
}

}  // namespace

WanRope::WanRope(int64_t head_dim, at::Device device, int64_t max_positions)
    : head_dim_(head_dim), max_positions_(max_positions) {
    QVG_CHECK(head_dim >= 6 && head_dim % 2 == 0, "RoPE head size must be even and >= 6, found {}",
              head_dim);
    QVG_CHECK(max_positions > 0, "RoPE table size must be positive, found {}", max_positions);
    const int64_t pairs = head_dim / 2;
    space_pairs_ = pairs / 3;
    time_pairs_ = pairs - 2 * space_pairs_;
    auto to_device = [&](const at::Tensor& t) { return t.to(device, at::kFloat).contiguous(); };
    auto [ct, st] = angle_table(max_positions, time_pairs_);
    auto [cs, ss] = angle_table(max_positions, space_pairs_);
    cos_time_ = to_device(ct);
    sin_time_ = to_device(st);
    cos_space_ = to_device(cs);
    sin_space_ = to_device(ss);
}

RopeAngles WanRope::angles(const std::vector<int64_t>& frames, int64_t rows, int64_t cols) const {
    QVG_CHECK(rows > 0 && cols > 0 && rows <= max_positions_ && cols <= max_positions_,
              "RoPE: token grid {}x{} is outside the table of {} positions", rows, cols,
              max_positions_);
    for (int64_t f : frames) {
        QVG_CHECK(f >= 0 && f < max_positions_,
                  "RoPE: latent frame index {} is outside the table of {} frames", f,
                  max_positions_);
    }
    const auto num_frames = static_cast<int64_t>(frames.size());
    const int64_t pairs = time_pairs_ + 2 * space_pairs_;
    if (num_frames == 0) {
        at::Tensor empty = at::empty({0, 1, pairs}, cos_time_.options());
        return {empty, empty};
    }
    // Frames usually form one run (a block, or a contiguous cache); slice instead of gathering.
    const bool contiguous_run =
        std::adjacent_find(frames.begin(), frames.end(),
                           [](int64_t a, int64_t b) { return b != a + 1; }) == frames.end();
    auto time_rows = [&](const at::Tensor& table) {
        if (contiguous_run) return table.narrow(0, frames.front(), num_frames);
        at::Tensor index = at::tensor(frames, at::TensorOptions().dtype(at::kLong))
                               .to(table.device(), /*non_blocking=*/false);
        return table.index_select(0, index);
    };
    auto build = [&](const at::Tensor& time_table, const at::Tensor& space_table) {
        const int64_t s = space_pairs_;
        at::Tensor t = time_rows(time_table)
                           .view({num_frames, 1, 1, time_pairs_})
                           .expand({num_frames, rows, cols, time_pairs_});
        at::Tensor h = space_table.narrow(0, 0, rows)
                           .view({1, rows, 1, s})
                           .expand({num_frames, rows, cols, s});
        at::Tensor w = space_table.narrow(0, 0, cols)
                           .view({1, 1, cols, s})
                           .expand({num_frames, rows, cols, s});
        return at::cat({t, h, w}, -1).view({num_frames * rows * cols, 1, pairs});
    };
    return {build(cos_time_, cos_space_), build(sin_time_, sin_space_)};
}

RopeAngles WanRope::angles(int64_t first_frame, int64_t num_frames, int64_t rows,
                           int64_t cols) const {
    QVG_CHECK(num_frames >= 0, "RoPE: negative frame count {}", num_frames);
    std::vector<int64_t> frames(static_cast<size_t>(num_frames));
    for (int64_t i = 0; i < num_frames; ++i) frames[static_cast<size_t>(i)] = first_frame + i;
    return angles(frames, rows, cols);
}

void WanRope::apply_into(const at::Tensor& x, const RopeAngles& angles, const at::Tensor& out) {
    QVG_CHECK(x.dim() == 4 && x.size(-1) % 2 == 0,
              "RoPE: expected x [B, L, H, D] with even D, found {}", x.sizes());
    QVG_CHECK(out.sizes() == x.sizes(), "RoPE: output shape {} differs from input shape {}",
              out.sizes(), x.sizes());
    QVG_CHECK(angles.tokens() == x.size(1) && angles.cos.size(2) * 2 == x.size(3),
              "RoPE: angles for {} tokens x {} pairs do not fit x {}", angles.tokens(),
              angles.cos.defined() ? angles.cos.size(2) : 0, x.sizes());
    if (x.numel() == 0) return;
#ifdef QVG_HAVE_CUDA
    // Same bits in one pass; the kernel is invisible to autograd, so not for a training graph.
    const bool needs_grad = at::GradMode::is_enabled() && x.requires_grad();
    if (!needs_grad && detail::rope_cuda(x, angles.cos, angles.sin, out)) return;
#endif
    const int64_t pairs = x.size(3) / 2;
    // Strided views: the pair split never copies x; `out` may be a slice of a larger buffer.
    at::Tensor xp = x.unflatten(-1, {pairs, 2});
    at::Tensor op = out.unflatten(-1, {pairs, 2});
    at::Tensor re = xp.select(-1, 0);
    at::Tensor im = xp.select(-1, 1);
    // Mixed bf16 x fp32 products promote to fp32, so the rotation itself is done in fp32 and
    // rounded once when written to `out`.
    op.select(-1, 0).copy_(re * angles.cos - im * angles.sin);
    op.select(-1, 1).copy_(re * angles.sin + im * angles.cos);
}

at::Tensor WanRope::apply(const at::Tensor& x, const RopeAngles& angles) {
    at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
    apply_into(x, angles, out);
    return out;
}

}  // namespace qvg::core
