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

}  // namespace

void qvg_decode_host(const QvgDecodeParams& p, float* out_f32) {
    const Tables& t = tables();
    const int per_byte = 8 / p.bits;
    const int64_t code_row = p.dim / per_byte;
    const int64_t groups = p.dim / p.group;
    const int64_t dim = p.dim;
    std::vector<float> row_values(static_cast<size_t>(dim));
    // One head's codebooks of every stage as float32 rows (C x D values per stage, a small
    // fraction of the head's tokens x D): the per-token centroid add is then a plain load.
    std::vector<float> codebooks(static_cast<size_t>(p.num_stages * p.num_centroids * dim));
    float* __restrict y = row_values.data();
    for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t h = 0; h < p.heads; ++h) {
            const int64_t bh = b * p.heads + h;
            for (int st = 0; st < p.num_stages; ++st) {
                float* __restrict cb = codebooks.data() + st * p.num_centroids * dim;
                const int64_t at = bh * p.num_centroids * dim;
                for (int64_t e = 0; e < p.num_centroids * dim; ++e) {
                    cb[e] = p.centroids_fp8[st] != nullptr
                                ? t.fp8[p.centroids_fp8[st][at + e]]
                                : detail::bf16_to_float(p.centroids[st][at + e]);
                }
            }
            for (int64_t n = 0; n < p.tokens; ++n) {
                const int64_t row = bh * p.tokens + n;
                const uint8_t* codes = p.codes + row * code_row;
                if (p.bits == 2) {
                    const auto& lut = p.asymmetric ? t.int2 : t.int2_sym;
                    for (int64_t i = 0; i < code_row; ++i) {
                        std::memcpy(y + 4 * i, lut[codes[i]].data(), 16);
                    }
                } else {
                    const auto& lut = p.asymmetric ? t.int4 : t.int4_sym;
                    for (int64_t i = 0; i < code_row; ++i) {
                        std::memcpy(y + 2 * i, lut[codes[i]].data(), 8);
                    }
                }
                for (int64_t g = 0; g < groups; ++g) {
                    const float s = t.fp8[p.scales[row * groups + g]];
                    // Symmetric: (u - qmax) * s + 0, the reference's accumulator (+0, never -0).
                    const float z = p.asymmetric ? t.fp8[p.zeros[row * groups + g]] : 0.0f;
                    float* __restrict yg = y + g * p.group;
                    for (int64_t d = 0; d < p.group; ++d) {
                        const float prod = yg[d] * s;
                        yg[d] = prod + z;
                    }
                }
                for (int st = 0; st < p.num_stages; ++st) {
                    const float* __restrict c =
                        codebooks.data() + (st * p.num_centroids + p.ids[st][row]) * dim;
                    for (int64_t d = 0; d < dim; ++d) y[d] = y[d] + c[d];
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
                    for (int64_t d = 0; d < dim; ++d)
                        o[d] = static_cast<uint16_t>(rounded_bf16(y[d]));
                }
            }
        }
    }
}

}  // namespace qvg::kernels
