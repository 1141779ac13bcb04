// qvg_decode_host: the reference decode (qvg_decode_ref.cpp) restructured for speed on the host.
// Per row: the codes become floats through a byte table, each group is scaled (plus its zero
// point), each stage's centroid row is added, and the row is rounded to BF16 once. The same
// operations in the same order, each rounded in fp32 (this file is built without FP contraction,
// so no multiply-add is fused), hence the same bits as the reference.

#include <array>
#include <cstring>
#include <vector>

#include "bf16_bits.h"
#include "fp8_bits.h"
#include "qvg/kernels/qvg_decode.h"

namespace qvg::kernels {
namespace {

struct Tables {
    std::array<float, 256> fp8{};
    // Byte -> its codes as floats, high bits first: 4 INT2 codes or 2 INT4 codes, each minus
    // the symmetric offset (qmax) or not.
    std::array<std::array<float, 4>, 256> int2{}, int2_sym{};
    std::array<std::array<float, 2>, 256> int4{}, int4_sym{};
    Tables() {
        for (int b = 0; b < 256; ++b) {
            fp8[b] = detail::fp8_e4m3_to_float(static_cast<uint8_t>(b));
            for (int i = 0; i < 4; ++i) {
                const int u = (b >> (2 * (3 - i))) & 3;
                int2[b][i] = static_cast<float>(u);
                int2_sym[b][i] = static_cast<float>(u - 1);
            }
            for (int i = 0; i < 2; ++i) {
                const int u = (b >> (4 * (1 - i))) & 15;
                int4[b][i] = static_cast<float>(u);
                int4_sym[b][i] = static_cast<float>(u - 7);
            }
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

// bf16_rne on whole rows, branch-free so that the loops vectorize: the same bits as
// detail::float_to_bf16 (NaN -> 0x7fc0, else round to nearest even).
inline uint32_t rounded_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : r;
}

// One row of `dim` values: codes -> floats (byte table), times the group's scale plus its zero
// point, plus each stage's centroid row, into y (fp32, not yet rounded). One pass per group of
// code bytes, the values kept in registers between the steps; kPer codes to a byte.
template <int kPer>
inline void decode_row(const std::array<std::array<float, kPer>, 256>& lut,
                       const std::array<float, 256>& fp8, const uint8_t* __restrict codes,
                       const uint8_t* __restrict scales, const uint8_t* __restrict zeros,
                       int64_t groups, int64_t group, const float* const* centroid_rows,
                       int num_stages, float* __restrict y) {
    const int64_t bytes_per_group = group / kPer;
    for (int64_t g = 0; g < groups; ++g) {
        const float s = fp8[scales[g]];
        // Symmetric: (u - qmax) * s + 0, the reference's accumulator (+0, never -0).
        const float z = zeros != nullptr ? fp8[zeros[g]] : 0.0f;
        const uint8_t* __restrict cg = codes + g * bytes_per_group;
        float* __restrict yg = y + g * group;
        for (int64_t i = 0; i < bytes_per_group; ++i) {
            const float* __restrict u = lut[cg[i]].data();
            for (int k = 0; k < kPer; ++k) yg[i * kPer + k] = u[k] * s + z;
        }
    }
    const int64_t dim = groups * group;
    for (int st = 0; st < num_stages; ++st) {
        const float* __restrict c = centroid_rows[st];
        for (int64_t d = 0; d < dim; ++d) y[d] = y[d] + c[d];
    }
}

}  // namespace

void qvg_decode_host(const QvgDecodeParams& p, float* out_f32, int64_t first, int64_t last) {
    const Tables& t = tables();
    const int per_byte = 8 / p.bits;
    const int64_t code_row = p.dim / per_byte;
    const int64_t groups = p.dim / p.group;
    const int64_t dim = p.dim;
    if (last < 0) last = p.batch * p.heads;
    std::vector<float> row_values(static_cast<size_t>(dim));
    // One head's codebooks of every stage as float32 rows (C x D values per stage, a small
    // fraction of the head's tokens x D): the per-token centroid add is then a plain load.
    std::vector<float> codebooks(static_cast<size_t>(p.num_stages * p.num_centroids * dim));
    float* __restrict y = row_values.data();
    const float* centroid_rows[kMaxStages] = {};
    for (int64_t bh = first; bh < last; ++bh) {
        const int64_t b = bh / p.heads, h = bh % p.heads;
        for (int st = 0; st < p.num_stages; ++st) {
            float* __restrict cb = codebooks.data() + st * p.num_centroids * dim;
            const int64_t at = bh * p.num_centroids * dim;
            if (p.centroids_fp8[st] != nullptr) {
                const uint8_t* __restrict src = p.centroids_fp8[st] + at;
                for (int64_t e = 0; e < p.num_centroids * dim; ++e) cb[e] = t.fp8[src[e]];
            } else {
                const uint16_t* __restrict src = p.centroids[st] + at;
                for (int64_t e = 0; e < p.num_centroids * dim; ++e) {
                    const uint32_t bits = static_cast<uint32_t>(src[e]) << 16;
                    std::memcpy(cb + e, &bits, 4);
                }
            }
        }
        for (int64_t n = 0; n < p.tokens; ++n) {
            const int64_t row = bh * p.tokens + n;
            for (int st = 0; st < p.num_stages; ++st) {
                centroid_rows[st] =
                    codebooks.data() + (st * p.num_centroids + p.ids[st][row]) * dim;
            }
            const uint8_t* codes = p.codes + row * code_row;
            const uint8_t* scales = p.scales + row * groups;
            const uint8_t* zeros = p.asymmetric ? p.zeros + row * groups : nullptr;
            if (p.bits == 2) {
                decode_row<4>(p.asymmetric ? t.int2 : t.int2_sym, t.fp8, codes, scales, zeros,
                              groups, p.group, centroid_rows, p.num_stages, y);
            } else {
                decode_row<2>(p.asymmetric ? t.int4 : t.int4_sym, t.fp8, codes, scales, zeros,
                              groups, p.group, centroid_rows, p.num_stages, y);
            }
            const int64_t at = b * p.out_stride_b + n * p.out_stride_n + h * p.out_stride_h;
            if (p.rope_cos != nullptr) {
                // The decoded BF16 values rotated in fp32 (re cos - im sin, re sin + im cos,
                // each product and sum rounded), then rounded once more for a BF16 output.
                for (int64_t d = 0; d < dim; ++d) {
                    const uint32_t bits = rounded_bf16(y[d]) << 16;
                    std::memcpy(y + d, &bits, 4);
                }
                const float* __restrict cs = p.rope_cos + n * (dim / 2);
                const float* __restrict sn = p.rope_sin + n * (dim / 2);
                for (int64_t i = 0; i < dim / 2; ++i) {
                    const float re = y[2 * i], im = y[2 * i + 1];
                    const float a = re * cs[i], bb = im * sn[i];
                    const float e = re * sn[i], f = im * cs[i];
                    y[2 * i] = a - bb;
                    y[2 * i + 1] = e + f;
                }
            }
            if (out_f32 != nullptr && p.rope_cos != nullptr) {
                std::memcpy(out_f32 + at, y, static_cast<size_t>(dim) * 4);
            } else if (out_f32 != nullptr) {
                float* __restrict o = out_f32 + at;
                for (int64_t d = 0; d < dim; ++d) {
                    const uint32_t bits = rounded_bf16(y[d]) << 16;
                    std::memcpy(o + d, &bits, 4);
                }
            } else {
                uint16_t* __restrict o = p.out + at;
                for (int64_t d = 0; d < dim; ++d) o[d] = static_cast<uint16_t>(rounded_bf16(y[d]));
            }
        }
    }
}

}  // namespace qvg::kernels
