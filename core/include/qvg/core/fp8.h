#pragma once
// FP8 E4M3 (the "fn" variant: no infinities, 0x7f/0xff NaN, max 448) as the QVG reference
// stores its scales: round-to-nearest-even, SATURATING to +-448 (cvt.rn.satfinite), with
// subnormals (min 2^-9) and underflow to 0. torch's own cast gives NaN above 464 instead.

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace qvg::core {

inline constexpr float kFp8E4M3Max = 448.0f;

// Scalar reference conversions (bit-exact; used by tests and as the CPU model of the kernels).
uint8_t fp8_e4m3_from_float(float value);
float fp8_e4m3_to_float(uint8_t bits);

// Tensor conversions on any device: float32 tensor -> uint8 bit patterns (saturating, RNE),
// and back to float32.
at::Tensor fp8_e4m3_encode(const at::Tensor& values);
at::Tensor fp8_e4m3_decode(const at::Tensor& bits);

}  // namespace qvg::core
