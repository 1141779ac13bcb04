#include "qvg/core/fp8.h"

#include <cmath>
#include <cstring>

#include <ATen/ATen.h>

namespace qvg::core {

uint8_t fp8_e4m3_from_float(float value) {
    if (std::isnan(value)) return 0x7f;
    const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
    const double a = std::fabs(static_cast<double>(value));
    if (a >= kFp8E4M3Max) return sign | 0x7e;  // satfinite
    // Quantum of the binade that holds a: subnormals share the quantum 2^-9 with the first
    // normal binade [2^-6, 2^-5).
    int exp2 = 0;
    std::frexp(a, &exp2);                           // a = m * 2^exp2, m in [0.5, 1)
    const int e = std::max(exp2 - 1, -6);           // unbiased exponent, clamped to the normal min
    const double quantum = std::ldexp(1.0, e - 3);  // 3 mantissa bits
    double steps = a / quantum;                     // exact: a has 24 significant bits at most
    double rounded = std::nearbyint(steps);         // ties to even (default rounding mode)
    // rounded * quantum may reach the next binade: the encoding below handles it naturally.
    const double r = rounded * quantum;
    if (r == 0.0) return sign;
    if (r >= kFp8E4M3Max) return sign | 0x7e;
    int rexp = 0;
    std::frexp(r, &rexp);
    const int re = rexp - 1;
    if (re < -6) {  // subnormal: value = m * 2^-9, m in 1..7
        return sign | static_cast<uint8_t>(r / std::ldexp(1.0, -9));
    }
    const int mant = static_cast<int>(r / std::ldexp(1.0, re - 3)) - 8;  // 0..7
    return sign | static_cast<uint8_t>(((re + 7) << 3) | mant);
}

float fp8_e4m3_to_float(uint8_t bits) {
    const bool neg = bits & 0x80;
    const int exp = (bits >> 3) & 0x0f;
    const int mant = bits & 0x07;
    float v;
    if (exp == 0x0f && mant == 0x07) {
        v = std::nanf("");
    } else if (exp == 0) {
        v = std::ldexp(static_cast<float>(mant), -9);
    } else {
        v = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
    }
    return neg ? -v : v;
}

at::Tensor fp8_e4m3_encode(const at::Tensor& values) {
    // Clamping first turns torch's RNE cast into the saturating one; NaN stays NaN.
    return values.to(at::kFloat)
        .clamp(-kFp8E4M3Max, kFp8E4M3Max)
        .to(at::kFloat8_e4m3fn)
        .view(at::kByte);
}

at::Tensor fp8_e4m3_decode(const at::Tensor& bits) {
    return bits.view(at::kFloat8_e4m3fn).to(at::kFloat);
}

}  // namespace qvg::core
