#pragma once
// Scalar group quantization of the last dimension and bit packing, bit-exact with the QVG
// reference kernels (qvg.md, "Scalar quantization" and "Packing"). Runs on any device.
//
// Symmetric: qmax = 2^(b-1) - 1; s8 = fp8(max(amax * fp32(1/qmax), 1e-10)) (saturating RNE);
//            q = clamp(round_half_away(x / s8), -qmax, qmax); groups with s8 == 0 store
//            (x < 0 ? -qmax : +qmax). Stored value u = q + qmax.
// Asymmetric: levels L = 2^b - 1; z8 = fp8(min); s8 = fp8(max((max - min) * fp32(1/L), 1e-10));
//            u = clamp(round_half_away((x - z8) / s8), 0, L); s8 == 0 stores 0.
// With clip_search the encoder picks a narrower range per group where that lowers the error.
// INT2 packs 4 values per byte, first in the most significant bits; INT4 packs 2.

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace qvg::core {

struct GroupQuantized {
    at::Tensor codes;   // uint8 [..., D * bits / 8]
    at::Tensor scales;  // uint8 FP8-E4M3 bits [..., D / G]
    at::Tensor zeros;   // uint8 FP8-E4M3 bits [..., D / G], asymmetric only (else undefined)
    int64_t nbytes() const;
};

struct GroupQuantSpec {
    int bits = 2;    // 2 or 4
    int group = 64;  // channels per scale; divides the last dimension
    bool asymmetric = false;
    // Per group, the range of least squared error among min-max and min-max narrowed in 5%
    // steps down to 40% (about the middle when asymmetric), the values outside it clipped; the
    // codes decode as any others. Never a larger error than min-max, 13 trials per encode.
    bool clip_search = false;
};

// Throws qvg::core::Error for bad bits/groups or a last dimension the group does not divide.
void validate(const GroupQuantSpec& spec, int64_t last_dim);

// x: floating tensor [..., D] on any device. Computation in fp32.
GroupQuantized quantize_groups(const at::Tensor& x, const GroupQuantSpec& spec);

// Back to fp32 [..., D] (D = codes' last dim * 8 / bits).
at::Tensor dequantize_groups(const GroupQuantized& q, const GroupQuantSpec& spec);

// Stored values u (uint8, already offset) <-> packed bytes along the last dimension.
at::Tensor pack_codes(const at::Tensor& u, int bits);
at::Tensor unpack_codes(const at::Tensor& packed, int bits);

// round half away from zero, exact in fp32 (floor(x + 0.5) is not: 0.49999997 + 0.5 rounds to 1).
at::Tensor round_half_away(const at::Tensor& x);

}  // namespace qvg::core
