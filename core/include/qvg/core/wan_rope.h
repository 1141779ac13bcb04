#pragma once
// Wan's 3D rotary position embedding. The head's D/2 channel pairs are ADJACENT pairs
// (2i, 2i+1) rotated as complex numbers; the first D/2 - 2*(D/2/3) pairs turn with the absolute
// latent-frame index, the next D/2/3 with the token's row, the last D/2/3 with its column
// (22/21/21 at D = 128). Frequencies are 10000^(-2k/n) with n = twice the pair count of the axis.
//
// Keys are cached BEFORE RoPE (kv_history.h), so the model rotates the whole history on every
// read; the angle tables are therefore computed once, in float64, and kept on the device in
// fp32. Rotating in fp32 costs ~1e-7 relative against upstream's float64 complex product, far
// below bf16's resolution, and keeps the hot path free of float64 arithmetic.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qvg::core {

// cos and sin of the rotation angle of every token and channel pair.
struct RopeAngles {
    at::Tensor cos;  // [L, 1, D/2] fp32, L = frames * rows * cols, tokens in frame, row, col order
    at::Tensor sin;  // [L, 1, D/2] fp32
    int64_t tokens() const { return cos.defined() ? cos.size(0) : 0; }
};

class WanRope {
  public:
    static constexpr int64_t kDefaultMaxPositions = 1024;

    // Tables for positions 0 .. max_positions-1 on each axis, built on `device`.
    WanRope(int64_t head_dim, at::Device device, int64_t max_positions = kDefaultMaxPositions);

    int64_t head_dim() const { return head_dim_; }
    int64_t time_pairs() const { return time_pairs_; }
    int64_t space_pairs() const { return space_pairs_; }  // per spatial axis
    int64_t max_positions() const { return max_positions_; }

    // Angles for every token of the given frames on a rows x cols token grid.
    // Throws Error for frame indices or grid sizes outside the tables.
    RopeAngles angles(const std::vector<int64_t>& frames, int64_t rows, int64_t cols) const;
    RopeAngles angles(int64_t first_frame, int64_t num_frames, int64_t rows, int64_t cols) const;

    // Rotates x [B, L, H, D] (fp32 or bf16) into out [B, L, H, D] (same device; may be a strided
    // view into a larger buffer, of x's or another floating dtype). Arithmetic in fp32.
    static void apply_into(const at::Tensor& x, const RopeAngles& angles, const at::Tensor& out);
    // Same, into a new tensor of x's dtype.
    static at::Tensor apply(const at::Tensor& x, const RopeAngles& angles);

  private:
    int64_t head_dim_;
    int64_t time_pairs_;
    int64_t space_pairs_;
    int64_t max_positions_;
    at::Tensor cos_time_;   // [max_positions, time_pairs] fp32 (angles computed in float64)
    at::Tensor sin_time_;   // [max_positions, time_pairs]
    at::Tensor cos_space_;  // [max_positions, space_pairs] shared by rows and columns
    at::Tensor sin_space_;  // [max_positions, space_pairs]
};

}  // namespace qvg::core
