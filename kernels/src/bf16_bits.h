#pragma once
// BF16 <-> float on the host, bit-exact with CUDA's __float2bfloat16_rn (round to nearest even).

#include <cmath>
#include <cstdint>
#include <cstring>

namespace qvg::kernels::detail {

inline float bf16_to_float(uint16_t bits) {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t float_to_bf16(float f) {
    if (std::isnan(f)) return 0x7fc0;
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return static_cast<uint16_t>(u >> 16);
}

}  // namespace qvg::kernels::detail
