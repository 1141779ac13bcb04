#pragma once
// The range search's candidate ranges (qvg_encode.h), shared by the reference and the host
// encode so that both choose from the same FP8 bits.

#include <cmath>
#include <cstdint>

#include "fp8_bits.h"
#include "qvg/kernels/qvg_encode.h"

namespace qvg::kernels::detail {

// FP8 scale (and zero) bits of one group from its statistics, for range candidate `cand`
// (0: min-max; c > 0: narrowed to 1 - 0.05 c of it, about its middle when asymmetric, about 0
// when symmetric), in the CPU codec's float operations.
inline void range_bits(bool asym, float amax, float lo, float hi, int cand, float inv, uint8_t& s8,
                       uint8_t& z8) {
    const float shrink = 1.0f - static_cast<float>(cand) * kClipStep;
    if (!asym) {
        const float a = cand == 0 ? amax : amax * shrink;
        s8 = fp8_e4m3_from_float(std::fmax(a * inv, 1e-10f));
        z8 = 0;
        return;
    }
    float mn = lo, mx = hi;
    if (cand > 0) {
        const float mid = (hi + lo) * 0.5f, half = (hi - lo) * 0.5f * shrink;
        mn = mid - half;
        mx = mid + half;
    }
    z8 = fp8_e4m3_from_float(mn);
    s8 = fp8_e4m3_from_float(std::fmax((mx - mn) * inv, 1e-10f));
}

}  // namespace qvg::kernels::detail
