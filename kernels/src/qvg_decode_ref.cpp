#include <cmath>
#include <cstring>

#include "qvg/kernels/qvg_decode.h"

namespace qvg::kernels {
namespace {

float fp8_e4m3_value(uint8_t bits) {
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

float bf16_value(uint16_t bits) {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t bf16_round(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (std::isnan(f)) return 0x7fc0;
    u += 0x7fff + ((u >> 16) & 1);  // round to nearest even
    return static_cast<uint16_t>(u >> 16);
}

}  // namespace

const char* validate(const QvgDecodeParams& p) {
    if (p.bits != 2 && p.bits != 4) return "bits must be 2 or 4";
    if (p.group <= 0 || p.dim <= 0 || p.dim % p.group != 0) return "group must divide dim";
    if (p.dim % 8 != 0) return "dim must be a multiple of 8";
    if (p.num_stages < 0 || p.num_stages > kMaxStages) return "num_stages must be in 0..4";
    if (p.codes == nullptr || p.scales == nullptr || p.out == nullptr) return "null codes, scales or out";
    if (p.asymmetric && p.zeros == nullptr) return "asymmetric needs zeros";
    for (int s = 0; s < p.num_stages; ++s) {
        if (p.ids[s] == nullptr || p.centroids[s] == nullptr) return "null stage ids or centroids";
    }
    if (p.num_stages > 0 && (p.num_centroids < 1 || p.num_centroids > 256)) return "num_centroids must be in 1..256";
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
                uint16_t* out = p.out + b * p.out_stride_b + n * p.out_stride_n + h * p.out_stride_h;
                for (int64_t d = 0; d < p.dim; ++d) {
                    const uint8_t byte = p.codes[row * code_row + d / per_byte];
                    const int u = (byte >> (p.bits * (per_byte - 1 - static_cast<int>(d % per_byte)))) & mask;
                    const float s = fp8_e4m3_value(p.scales[row * scale_row + d / p.group]);
                    float y;
                    if (p.asymmetric) {
                        const float z = fp8_e4m3_value(p.zeros[row * scale_row + d / p.group]);
                        y = static_cast<float>(u) * s;
                        y = y + z;
                    } else {
                        y = static_cast<float>(u - qmax) * s;
                        y = y + 0.0f;  // the reference accumulator: +0, never -0
                    }
                    for (int st = 0; st < p.num_stages; ++st) {
                        const int id = p.ids[st][bh * p.tokens + n];
                        y = y + bf16_value(p.centroids[st][(bh * p.num_centroids + id) * p.dim + d]);
                    }
                    out[d] = bf16_round(y);
                }
            }
        }
    }
}

}  // namespace qvg::kernels
