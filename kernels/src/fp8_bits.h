#pragma once
// FP8-E4M3 on the host, bit-exact with the CUDA conversions the kernels use:
// saturating round-to-nearest-even encode (cvt.rn.satfinite.e4m3x2.f32) and exact decode.

#include <cmath>
#include <cstdint>

namespace qvg::kernels::detail {

inline float fp8_e4m3_to_float(uint8_t bits) {
    const int exp = (bits >> 3) & 0x0f;
    const int mant = bits & 0x07;
    float v;
    if (exp == 0x0f && mant == 0x07) {
        v = NAN;
    } else if (exp == 0) {
        v = std::ldexp(static_cast<float>(mant), -9);
    } else {
        v = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
    }
    return (bits & 0x80) ? -v : v;
}

inline uint8_t fp8_e4m3_from_float(float value) {
    if (std::isnan(value)) return 0x7f;
    const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
    const double a = std::fabs(static_cast<double>(value));
    if (a >= 448.0) return sign | 0x7e;
    int e2 = 0;
    std::frexp(a, &e2);
    const int e = e2 - 1 < -6 ? -6 : e2 - 1;
    const double quantum = std::ldexp(1.0, e - 3);
    const double r = std::nearbyint(a / quantum) * quantum;
    if (r == 0.0) return sign;
    if (r >= 448.0) return sign | 0x7e;
    int re2 = 0;
    std::frexp(r, &re2);
    const int re = re2 - 1;
    if (re < -6) return sign | static_cast<uint8_t>(r / std::ldexp(1.0, -9));
    return sign | static_cast<uint8_t>(((re + 7) << 3) |
                                       (static_cast<int>(r / std::ldexp(1.0, re - 3)) - 8));
}

inline float round_half_away(float v) {
    float t = std::trunc(v);
    if (std::fabs(v - t) >= 0.5f) t += (v > 0) ? 1.0f : -1.0f;
    return t;
}

}  // namespace qvg::kernels::detail
