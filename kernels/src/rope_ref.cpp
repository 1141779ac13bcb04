#include "bf16_bits.h"
#include "qvg/kernels/rope.h"

namespace qvg::kernels {

void rope_reference(const RopeParams& p) {
    const int64_t pairs = p.dim / 2;
    for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t l = 0; l < p.tokens; ++l) {
            for (int64_t h = 0; h < p.heads; ++h) {
                const uint16_t* x = p.x + b * p.x_stride_b + l * p.x_stride_l + h * p.x_stride_h;
                uint16_t* out =
                    p.out + b * p.out_stride_b + l * p.out_stride_l + h * p.out_stride_h;
                for (int64_t i = 0; i < pairs; ++i) {
                    const float re = detail::bf16_to_float(x[2 * i]);
                    const float im = detail::bf16_to_float(x[2 * i + 1]);
                    const float c = p.cos[l * pairs + i];
                    const float s = p.sin[l * pairs + i];
                    const float a = re * c;
                    const float bb = im * s;
                    const float e = re * s;
                    const float f = im * c;
                    out[2 * i] = detail::float_to_bf16(a - bb);
                    out[2 * i + 1] = detail::float_to_bf16(e + f);
                }
            }
        }
    }
}

}  // namespace qvg::kernels
