// residual_quant_host: residual_quant_reference (qvg_encode_ref.cpp) restructured for speed on
// the host. The range search quantizes each group's values once per candidate range in loops
// the compiler vectorizes (the rounding and clamping written as selects, the truncation as an
// integer conversion where that is exact), then sums each candidate's error in the reference's
// order: runs of 8 channels in turn, the runs pairwise by the xor butterfly. Everything else
// (ranges, codes, decoded values, the per-token sums) follows the reference operation by
// operation; this file is built without FP contraction, so the bits are the reference's.

#include <cmath>
#include <cstring>
#include <vector>

#include "bf16_bits.h"
#include "fp8_bits.h"
#include "qvg/kernels/qvg_encode.h"
#include "range_bits.h"

namespace qvg::kernels {
namespace {

constexpr int kRun = 8;

// std::trunc without a library call or a branch: below 2^23 in magnitude the conversion to
// int32 truncates exactly (what is converted is always in range, so the loop can convert
// every lane); from there on (and for infinities and NaN) every float is its own truncation.
// Only -0.0 comes back as +0.0, which no code, value or error below tells apart.
inline float trunc_fast(float v) {
    const bool small = std::fabs(v) < 8388608.0f;
    const float in_range = small ? v : 0.0f;
    const float t = static_cast<float>(static_cast<int32_t>(in_range));
    return small ? t : v;
}

// detail::round_half_away as selects.
inline float round_away(float v) {
    const float t = trunc_fast(v);
    const float away = t + (v > 0.0f ? 1.0f : -1.0f);
    return std::fabs(v - t) >= 0.5f ? away : t;
}

// The reference's quantize_value for n values under one range: the decoded values (without a
// stage's centroid) into y and, when u is given, the stored codes. fmin/fmax as selects: the
// same for every input, NaN included (both give the clamp's lower end). A zero scale (a group
// whose FP8 scale rounds to 0) takes its own loop, so that the main one has no branch.
template <bool kAsym>
inline void quantize(const float* __restrict v, int64_t n, int qmax_i, float s, float z,
                     float* __restrict y, int32_t* __restrict u) {
    const float qmax = static_cast<float>(qmax_i);
    const int32_t offset = kAsym ? 0 : qmax_i;
    if (s == 0.0f) {
        for (int64_t i = 0; i < n; ++i) {
            const float q = kAsym ? 0.0f : (v[i] < 0.0f ? -qmax : qmax);
            y[i] = kAsym ? q * s + z : q * s + 0.0f;
            if (u != nullptr) u[i] = static_cast<int32_t>(q) + offset;
        }
        return;
    }
    const float qmin = kAsym ? 0.0f : -qmax;
    for (int64_t i = 0; i < n; ++i) {  // the test of u is hoisted out by the compiler
        const float r = round_away(kAsym ? (v[i] - z) / s : v[i] / s);
        const float lo = r > qmin ? r : qmin;
        const float q = lo < qmax ? lo : qmax;
        y[i] = kAsym ? q * s + z : q * s + 0.0f;
        if (u != nullptr) u[i] = static_cast<int32_t>(q) + offset;
    }
}

struct Scratch {
    std::vector<float> x, c, r, y, trial, e;  // trial, e: one candidate range's values, errors
    std::vector<int32_t> u;
    explicit Scratch(int64_t dim) {
        for (auto* v : {&x, &c, &r, &y, &trial, &e}) v->resize(static_cast<size_t>(dim));
        u.resize(static_cast<size_t>(dim));
    }
};

// One group's squared error under a range, in the reference's (the CUDA kernel's) order.
template <bool kAsym>
float range_error(const float* rg, int64_t group, int qmax, uint8_t s8, uint8_t z8, float* y,
                  float* e) {
    const float s = detail::fp8_e4m3_to_float(s8);
    const float z = kAsym ? detail::fp8_e4m3_to_float(z8) : 0.0f;
    quantize<kAsym>(rg, group, qmax, s, z, y, nullptr);
    for (int64_t i = 0; i < group; ++i) {
        const float d = y[i] - rg[i];
        e[i] = d * d;
    }
    float part[256 / kRun];
    const int64_t runs = group / kRun;
    for (int64_t k = 0; k < runs; ++k) {
        float acc = 0.0f;
        for (int j = 0; j < kRun; ++j) acc += e[k * kRun + j];
        part[k] = acc;
    }
    for (int64_t off = 1; off < runs; off <<= 1) {
        float next[256 / kRun];
        for (int64_t l = 0; l < runs; ++l) next[l] = part[l] + part[l ^ off];
        std::memcpy(part, next, static_cast<size_t>(runs) * sizeof(float));
    }
    return part[0];
}

template <bool kAsym>
void encode_rows(const ResidualQuantParams& p, int64_t first, int64_t last) {
    const int per_byte = 8 / p.bits;
    const int qmax = kAsym ? (1 << p.bits) - 1 : (1 << (p.bits - 1)) - 1;
    const float inv = 1.0f / static_cast<float>(qmax);
    const int64_t dim = p.dim, group = p.group, groups_per_row = dim / group;
    Scratch w(dim);
    for (int64_t row = first; row < last; ++row) {
        const int64_t g = row / p.tokens;
        float* __restrict x = w.x.data();
        if (p.x != nullptr) {
            std::memcpy(x, p.x + row * dim, static_cast<size_t>(dim) * sizeof(float));
        } else {
            for (int64_t d = 0; d < dim; ++d) x[d] = detail::bf16_to_float(p.x_bf16[row * dim + d]);
        }
        float* __restrict c = w.c.data();
        float* __restrict r = w.r.data();
        if (p.ids != nullptr) {
            const uint16_t* cent = p.centroids + (g * p.num_centroids + p.ids[row]) * dim;
            for (int64_t d = 0; d < dim; ++d) {
                c[d] = detail::bf16_to_float(cent[d]);
                r[d] = detail::bf16_to_float(detail::float_to_bf16(x[d] - c[d]));
            }
        } else {
            std::memcpy(r, x, static_cast<size_t>(dim) * sizeof(float));
        }
        float* __restrict y = w.y.data();
        int32_t* __restrict u = w.u.data();
        for (int64_t k = 0; k < groups_per_row; ++k) {
            const float* rg = r + k * group;
            float amax = 0.0f, lo = rg[0], hi = rg[0];
            for (int64_t i = 0; i < group; ++i) {
                amax = std::fmax(amax, std::fabs(rg[i]));
                lo = std::fmin(lo, rg[i]);
                hi = std::fmax(hi, rg[i]);
            }
            uint8_t s8 = 0, z8 = 0;
            detail::range_bits(kAsym, amax, lo, hi, 0, inv, s8, z8);
            if (p.clip_search) {
                float best =
                    range_error<kAsym>(rg, group, qmax, s8, z8, w.trial.data(), w.e.data());
                uint8_t prev_s8 = s8, prev_z8 = z8;
                for (int cand = 1; cand <= kClipSteps; ++cand) {
                    uint8_t cs8 = 0, cz8 = 0;
                    detail::range_bits(kAsym, amax, lo, hi, cand, inv, cs8, cz8);
                    // The same bits as the candidate before: the same error, never less.
                    if (cs8 == prev_s8 && cz8 == prev_z8) continue;
                    prev_s8 = cs8;
                    prev_z8 = cz8;
                    const float e =
                        range_error<kAsym>(rg, group, qmax, cs8, cz8, w.trial.data(), w.e.data());
                    if (e < best) {  // the first range of least error
                        best = e;
                        s8 = cs8;
                        z8 = cz8;
                    }
                }
            }
            p.scales[row * groups_per_row + k] = s8;
            if (kAsym) p.zeros[row * groups_per_row + k] = z8;
            const float s = detail::fp8_e4m3_to_float(s8);
            const float z = kAsym ? detail::fp8_e4m3_to_float(z8) : 0.0f;
            quantize<kAsym>(rg, group, qmax, s, z, y + k * group, u + k * group);
        }
        // The per-token sums in the reference's order, channel by channel.
        float res_sq = 0.0f, err_sq = 0.0f, in_sq = 0.0f;
        for (int64_t d = 0; d < dim; ++d) {
            float yd = y[d];
            if (p.ids != nullptr) yd = yd + c[d];
            const float xh = detail::bf16_to_float(detail::float_to_bf16(yd));
            res_sq += r[d] * r[d];
            err_sq += (x[d] - xh) * (x[d] - xh);
            in_sq += x[d] * x[d];
        }
        uint8_t* codes = p.codes + row * (dim / per_byte);
        for (int64_t j = 0; j < dim / per_byte; ++j) {
            int byte = 0;
            for (int i = 0; i < per_byte; ++i) byte = (byte << p.bits) | u[j * per_byte + i];
            codes[j] = static_cast<uint8_t>(byte);
        }
        if (p.residual_sq) p.residual_sq[row] = res_sq;
        if (p.error_sq) p.error_sq[row] = err_sq;
        if (p.input_sq) p.input_sq[row] = in_sq;
    }
}

}  // namespace

bool residual_quant_host_takes(const ResidualQuantParams& p) {
    if ((p.x == nullptr) == (p.x_bf16 == nullptr) || (p.bits != 2 && p.bits != 4) ||
        p.group < kRun || p.group > 256 || p.group % kRun != 0 || p.dim % p.group != 0 ||
        p.groups < 0 || p.tokens < 0 || (p.ids != nullptr && p.centroids == nullptr) ||
        p.codes == nullptr || p.scales == nullptr || (p.asymmetric && p.zeros == nullptr)) {
        return false;
    }
    const int64_t runs = p.group / kRun;
    return (runs & (runs - 1)) == 0;  // the butterfly pairs whole halves
}

void residual_quant_host(const ResidualQuantParams& p, int64_t first, int64_t last) {
    if (last < 0) last = p.groups * p.tokens;
    if (p.asymmetric) {
        encode_rows<true>(p, first, last);
    } else {
        encode_rows<false>(p, first, last);
    }
}

}  // namespace qvg::kernels
