#include <cmath>
#include <cstring>

#include "bf16_bits.h"
#include "fp8_bits.h"
#include "qvg/kernels/qvg_decode.h"

namespace qvg::kernels {

const char* validate(const QvgDecodeParams& p) {
    if (p.bits != 2 && p.bits != 4) return "bits must be 2 or 4";
    if (p.group <= 0 || p.dim <= 0 || p.dim % p.group != 0) return "group must divide dim";
    if (p.dim % 8 != 0) return "dim must be a multiple of 8";
    if (p.num_stages < 0 || p.num_stages > kMaxStages) return "num_stages must be in 0..4";
    if (p.codes == nullptr || p.scales == nullptr || p.out == nullptr)
        return "null codes, scales or out";
    if (p.asymmetric && p.zeros == nullptr) return "asymmetric needs zeros";
    for (int s = 0; s < p.num_stages; ++s) {
        if (p.ids[s] == nullptr || (p.centroids[s] == nullptr) == (p.centroids_fp8[s] == nullptr))
            return "each stage needs ids and one codebook (BF16 or FP8)";
    }
    if ((p.rope_cos == nullptr) != (p.rope_sin == nullptr))
        return "rope_cos and rope_sin go together";
    if (p.num_stages > 0 && (p.num_centroids < 1 || p.num_centroids > 256))
        return "num_centroids must be in 1..256";
    if (p.batch < 0 || p.heads < 0 || p.tokens < 0) return "negative shape";
    return "";
}

void qvg_decode_reference(const QvgDecodeParams& p) {
    const int per_byte = 8 / p.bits;
    const int mask = (1 << p.bits) - 1;
    const int qmax = (1 << (p.bits - 1)) - 1;
    const int64_t code_row = p.dim / per_byte;
    const int64_t scale_row = p.dim / p.group;
    for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t h = 0; h < p.heads; ++h) {
            const int64_t bh = b * p.heads + h;
            for (int64_t n = 0; n < p.tokens; ++n) {
                const int64_t row = bh * p.tokens + n;
                uint16_t* out =
                    p.out + b * p.out_stride_b + n * p.out_stride_n + h * p.out_stride_h;
                for (int64_t d = 0; d < p.dim; ++d) {
                    const uint8_t byte = p.codes[row * code_row + d / per_byte];
                    const int u =
                        (byte >> (p.bits * (per_byte - 1 - static_cast<int>(d % per_byte)))) & mask;
                    const float s =
                        detail::fp8_e4m3_to_float(p.scales[row * scale_row + d / p.group]);
                    float y;
                    if (p.asymmetric) {
                        const float z =
                            detail::fp8_e4m3_to_float(p.zeros[row * scale_row + d / p.group]);
                        y = static_cast<float>(u) * s;
                        y = y + z;
                    } else {
                        y = static_cast<float>(u - qmax) * s;
                        y = y + 0.0f;  // the reference accumulator: +0, never -0
                    }
                    for (int st = 0; st < p.num_stages; ++st) {
                        const int id = p.ids[st][bh * p.tokens + n];
                        const int64_t at = (bh * p.num_centroids + id) * p.dim + d;
                        y = y + (p.centroids_fp8[st] != nullptr
                                     ? detail::fp8_e4m3_to_float(p.centroids_fp8[st][at])
                                     : detail::bf16_to_float(p.centroids[st][at]));
                    }
                    out[d] = detail::float_to_bf16(y);
                }
                if (p.rope_cos != nullptr) {
                    const float* cs = p.rope_cos + n * (p.dim / 2);
                    const float* sn = p.rope_sin + n * (p.dim / 2);
                    for (int64_t i = 0; i < p.dim / 2; ++i) {
                        const float re = detail::bf16_to_float(out[2 * i]);
                        const float im = detail::bf16_to_float(out[2 * i + 1]);
                        const float a = re * cs[i];
                        const float bb = im * sn[i];
                        const float e = re * sn[i];
                        const float f = im * cs[i];
                        out[2 * i] = detail::float_to_bf16(a - bb);
                        out[2 * i + 1] = detail::float_to_bf16(e + f);
                    }
                }
            }
        }
    }
}

void widen_int4_codebook_reference(const Int4CodebookParams& p) {
    for (int64_t r = 0; r < p.rows; ++r) {
        const float s = detail::fp8_e4m3_to_float(p.scales[r]);
        const float z = detail::fp8_e4m3_to_float(p.zeros[r]);
        for (int64_t e = 0; e < p.dim; ++e) {
            const uint8_t byte = p.codes[r * (p.dim / 2) + e / 2];
            const int u = e % 2 == 0 ? byte >> 4 : byte & 0xf;
            const float y = static_cast<float>(u) * s;
            p.out[r * p.dim + e] = detail::float_to_bf16(y + z);
        }
    }
}

}  // namespace qvg::kernels
