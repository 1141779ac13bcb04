#include "qvg/core/quant_pack.h"

#include <ATen/ATen.h>

#include "qvg/core/error.h"
#include "qvg/core/fp8.h"
#include "qvg/kernels/qvg_encode.h"

namespace qvg::core {
namespace {

constexpr float kScaleFloor = 1e-10f;
// Range search (GroupQuantSpec::clip_search): min-max narrowed by 5% steps down to 40%, the
// steps shared with the CUDA kernel and its reference.
using kernels::kClipStep;
using kernels::kClipSteps;

int sym_qmax(int bits) { return (1 << (bits - 1)) - 1; }
int asym_levels(int bits) { return (1 << bits) - 1; }

// [..., D] -> [M, D/G, G] fp32
at::Tensor grouped(const at::Tensor& x, int group) {
    return x.to(at::kFloat).reshape({-1, x.size(-1) / group, group});
}

std::vector<int64_t> with_last(at::IntArrayRef sizes, int64_t last) {
    std::vector<int64_t> out(sizes.begin(), sizes.end());
    out.back() = last;
    return out;
}

}  // namespace

int64_t GroupQuantized::nbytes() const {
    int64_t n = codes.defined() ? codes.nbytes() : 0;
    n += scales.defined() ? scales.nbytes() : 0;
    n += zeros.defined() ? zeros.nbytes() : 0;
    return n;
}

void validate(const GroupQuantSpec& spec, int64_t last_dim) {
    QVG_CHECK(spec.bits == 2 || spec.bits == 4, "quantization bits must be 2 or 4, got {}",
              spec.bits);
    QVG_CHECK(spec.group > 0 && last_dim % spec.group == 0,
              "group size {} must divide the head dimension {}", spec.group, last_dim);
    QVG_CHECK(spec.group % (8 / spec.bits) == 0,
              "group size {} must be a multiple of {} for INT{} packing", spec.group, 8 / spec.bits,
              spec.bits);
}

at::Tensor round_half_away(const at::Tensor& x) {
    at::Tensor t = x.trunc();
    at::Tensor away = (x - t).abs().ge(0.5f);
    return t + away.to(x.scalar_type()) * x.sign();
}

at::Tensor pack_codes(const at::Tensor& u, int bits) {
    const int per_byte = 8 / bits;
    QVG_CHECK(u.size(-1) % per_byte == 0, "cannot pack {} values at {} per byte", u.size(-1),
              per_byte);
    at::Tensor v = u.to(at::kByte).reshape({-1, u.size(-1) / per_byte, per_byte});
    at::Tensor out = v.select(-1, 0).clone();
    for (int i = 1; i < per_byte; ++i) {
        out.mul_(1 << bits).add_(v.select(-1, i));  // first element ends in the top bits
    }
    return out.reshape(with_last(u.sizes(), u.size(-1) / per_byte));
}

at::Tensor unpack_codes(const at::Tensor& packed, int bits) {
    const int per_byte = 8 / bits;
    const int mask = (1 << bits) - 1;
    std::vector<at::Tensor> parts;
    parts.reserve(per_byte);
    for (int i = 0; i < per_byte; ++i) {
        const int shift = bits * (per_byte - 1 - i);
        parts.push_back(packed.bitwise_right_shift(shift).bitwise_and(mask));
    }
    at::Tensor u = at::stack(parts, -1);  // [..., B, per_byte]
    return u.reshape(with_last(packed.sizes(), packed.size(-1) * per_byte));
}

namespace {

// One candidate range per group: stored values u [M, D/G, G], FP8 scale (and zero) bits
// [M, D/G, 1] and, when `measure` is set, each group's squared error [M, D/G, 1] as decoded.
// `shrink` (a factor; undefined = exactly min-max) narrows the range, about its middle when
// asymmetric and about 0 when symmetric.
struct Candidate {
    at::Tensor u, s8, z8, err;
};

Candidate quantize_with(const at::Tensor& xg, const GroupQuantSpec& spec, const at::Tensor& shrink,
                        bool measure) {
    Candidate c;
    at::Tensor y;
    if (!spec.asymmetric) {
        const int qmax = sym_qmax(spec.bits);
        const float inv_qmax = 1.0f / static_cast<float>(qmax);
        at::Tensor amax = xg.abs().amax(-1, /*keepdim=*/true);  // [M, D/G, 1]
        if (shrink.defined()) amax = amax * shrink;
        c.s8 = fp8_e4m3_encode(amax.mul(inv_qmax).clamp_min(kScaleFloor));
        at::Tensor sf = fp8_e4m3_decode(c.s8);
        at::Tensor q = round_half_away(xg / sf).clamp(-qmax, qmax);
        // x / 0 is +-inf or NaN; the reference stores the sign's extreme code there.
        at::Tensor zero_rule = at::where(xg.lt(0), -qmax, qmax).to(at::kFloat);
        q = at::where(sf.eq(0).expand_as(q), zero_rule, q);
        c.u = (q + qmax).to(at::kByte);
        if (measure) y = q * sf;
    } else {
        const int levels = asym_levels(spec.bits);
        const float inv_levels = 1.0f / static_cast<float>(levels);
        at::Tensor mn = xg.amin(-1, /*keepdim=*/true);
        at::Tensor mx = xg.amax(-1, /*keepdim=*/true);
        if (shrink.defined()) {
            at::Tensor mid = (mx + mn) * 0.5f, half = (mx - mn) * 0.5f * shrink;
            mn = mid - half;
            mx = mid + half;
        }
        c.z8 = fp8_e4m3_encode(mn);
        c.s8 = fp8_e4m3_encode((mx - mn).mul(inv_levels).clamp_min(kScaleFloor));
        at::Tensor zf = fp8_e4m3_decode(c.z8);
        at::Tensor sf = fp8_e4m3_decode(c.s8);
        at::Tensor q = round_half_away((xg - zf) / sf).clamp(0, levels);
        q = at::where(sf.eq(0).expand_as(q), at::zeros_like(q), q);
        c.u = q.to(at::kByte);
        if (measure) y = q * sf + zf;
    }
    if (measure) c.err = (y - xg).pow(2).sum(-1, /*keepdim=*/true);
    return c;
}

}  // namespace

GroupQuantized quantize_groups(const at::Tensor& x, const GroupQuantSpec& spec) {
    QVG_CHECK(x.dim() >= 1 && x.is_floating_point(),
              "quantize_groups needs a floating tensor, got {}", c10::toString(x.scalar_type()));
    validate(spec, x.size(-1));
    const at::Tensor xg = grouped(x, spec.group);  // [M, D/G, G]
    Candidate best = quantize_with(xg, spec, at::Tensor(), spec.clip_search);
    if (spec.clip_search) {
        // Min-max first, then ranges narrowed step by step; a group keeps the first range of
        // least error, so it never does worse than min-max.
        const at::Tensor one = at::ones({1, 1, 1}, xg.options());
        for (int i = 1; i <= kClipSteps; ++i) {
            const float shrink = 1.0f - static_cast<float>(i) * kClipStep;
            Candidate c = quantize_with(xg, spec, one * shrink, true);
            at::Tensor better = c.err.lt(best.err);  // [M, D/G, 1]
            best.u = at::where(better, c.u, best.u);
            best.s8 = at::where(better, c.s8, best.s8);
            if (spec.asymmetric) best.z8 = at::where(better, c.z8, best.z8);
            best.err = at::where(better, c.err, best.err);
        }
    }
    GroupQuantized out;
    const std::vector<int64_t> per_group = with_last(x.sizes(), x.size(-1) / spec.group);
    out.scales = best.s8.reshape(per_group);
    if (spec.asymmetric) out.zeros = best.z8.reshape(per_group);
    out.codes = pack_codes(best.u.reshape(x.sizes()), spec.bits);
    return out;
}

at::Tensor dequantize_groups(const GroupQuantized& q, const GroupQuantSpec& spec) {
    const int64_t dim = q.codes.size(-1) * 8 / spec.bits;
    validate(spec, dim);
    at::Tensor u = unpack_codes(q.codes, spec.bits).to(at::kFloat);
    u = u.reshape({-1, dim / spec.group, spec.group});
    at::Tensor sf = fp8_e4m3_decode(q.scales).reshape({-1, dim / spec.group, 1});
    at::Tensor y;
    if (!spec.asymmetric) {
        // "+ 0" as the reference's accumulator does: a zero-scale group gives +0, never -0.
        y = ((u - static_cast<float>(sym_qmax(spec.bits))) * sf).add_(0.0f);
    } else {
        at::Tensor zf = fp8_e4m3_decode(q.zeros).reshape({-1, dim / spec.group, 1});
        y = u * sf + zf;
    }
    return y.reshape(with_last(q.codes.sizes(), dim));
}

}  // namespace qvg::core
