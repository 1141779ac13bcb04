#pragma once
// Rotary position embedding on BF16 [B, L, H, D] tensors with per-token fp32 cos/sin tables
// [L, D/2] (adjacent channel pairs (2i, 2i+1) rotate by angle i of the token):
//   out[2i]   = bf16(x[2i] * cos_i - x[2i+1] * sin_i)
//   out[2i+1] = bf16(x[2i] * sin_i + x[2i+1] * cos_i)
// each product and sum rounded in fp32 as separate operations, like the ATen expression.
// Input and output are strided (last dimension contiguous), so the output can be a slice of a
// larger [history ++ block] key buffer.

#include <cstdint>

namespace qvg::kernels {

struct RopeParams {
    const uint16_t* x = nullptr;  // BF16 bits
    uint16_t* out = nullptr;      // BF16 bits
    const float* cos = nullptr;   // [tokens, dim / 2]
    const float* sin = nullptr;   // [tokens, dim / 2]
    int64_t batch = 0, tokens = 0, heads = 0, dim = 0;
    int64_t x_stride_b = 0, x_stride_l = 0, x_stride_h = 0;
    int64_t out_stride_b = 0, out_stride_l = 0, out_stride_h = 0;
};

// CPU reference.
void rope_reference(const RopeParams& p);

}  // namespace qvg::kernels
