// The codec methods. QVG and RTN share one implementation (RTN is QVG with no smoothing
// stage); the other baselines follow qvg.md's "Baselines we must support".

#include <ATen/ATen.h>

#include "codec_impl.h"
#include "cuda_bridge.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/fp8.h"
#include "qvg/core/kmeans.h"
#include "qvg/core/rng.h"
#include "residual_quant.h"

namespace qvg::core::detail {
namespace {

GroupQuantSpec spec_of(const CodecConfig& c) {
    return {c.bits, c.group, c.asymmetric, c.clip_search};
}

// Per channel (KIVI's keys): x [B, H, N, D] -> groups of G tokens along [B, H, D, N']. The
// token axis is padded to whole groups by repeating the last token, which leaves every group's
// min and max unchanged; the padding is stored and counted.
GroupQuantized quantize_channels(const at::Tensor& x, const GroupQuantSpec& spec) {
    const int64_t n = x.size(2);
    const int64_t padded = (n + spec.group - 1) / spec.group * spec.group;
    at::Tensor xt = x.to(at::kFloat).transpose(2, 3);  // [B, H, D, N]
    if (padded != n) {
        at::Tensor last =
            xt.narrow(-1, n - 1, 1).expand({xt.size(0), xt.size(1), xt.size(2), padded - n});
        xt = at::cat({xt, last}, -1);
    }
    return quantize_groups(xt.contiguous(), spec);
}

// Inverse of quantize_channels: fp32 [B, H, N, D] for a span of `tokens` tokens.
at::Tensor dequantize_channels(const GroupQuantized& q, const GroupQuantSpec& spec,
                               int64_t tokens) {
    return dequantize_groups(q, spec).narrow(-1, 0, tokens).transpose(2, 3).contiguous();
}

// Whether a QVG/RTN span's last residual is held per channel.
bool per_channel(const CodecConfig& c, KVRole role) {
    return c.channel_keys && role == KVRole::kKey;
}

// The last residual of a QVG/RTN span, decoded: fp32 [B, H, N, D].
at::Tensor scalar_part(const EncodedSpan& span) {
    const GroupQuantSpec spec = spec_of(span.config);
    return per_channel(span.config, span.role)
               ? dequantize_channels(span.quant, spec, span.shape[2])
               : dequantize_groups(span.quant, spec);
}

GroupQuantized quantize_residual(const at::Tensor& r, const CodecConfig& c, KVRole role) {
    return per_channel(c, role) ? quantize_channels(r, spec_of(c)) : quantize_groups(r, spec_of(c));
}

// A stage whose codebook is held at 8 (FP8 E4M3) or 4 (INT4 per centroid) bits.
SpanStage held_codebook(const at::Tensor& ids, const at::Tensor& centroids, int bits) {
    if (bits == 8) return {ids, fp8_e4m3_encode(centroids)};
    const GroupQuantized q = quantize_groups(centroids, int4_codebook_spec(centroids.size(-1)));
    return {ids, q.codes, q.scales, q.zeros};
}

// centroids[id] of one stage: [B, H, N, D] fp32
at::Tensor stage_values(const SpanStage& st, const std::vector<int64_t>& shape) {
    at::Tensor idx = st.ids.to(at::kLong).unsqueeze(-1).expand(shape);
    return centroid_values(st).gather(2, idx);
}

class Bf16Codec final : public Codec {
  public:
    explicit Bf16Codec(const CodecConfig& c) : Codec(c) {}
    at::Tensor decode_float(const EncodedSpan& span) const override {
        return span.payload.to(at::kFloat);
    }

  protected:
    void encode_into(const at::Tensor& x, const EncodeContext&, EncodedSpan& span,
                     Telemetry&) const override {
        // A copy even when x is BF16 already: the span must not alias the caller's tensor.
        span.payload = x.to(at::kBFloat16, /*non_blocking=*/false, /*copy=*/true);
    }
};

// E4M3 values with one fp32 scale per token (amax / 448).
class Fp8Codec final : public Codec {
  public:
    explicit Fp8Codec(const CodecConfig& c) : Codec(c) {}
    at::Tensor decode_float(const EncodedSpan& span) const override {
        return fp8_e4m3_decode(span.payload) * span.token_scales.unsqueeze(-1);
    }

  protected:
    void encode_into(const at::Tensor& x, const EncodeContext&, EncodedSpan& span,
                     Telemetry&) const override {
        const at::Tensor xf = x.to(at::kFloat);
        at::Tensor scale = (xf.abs().amax(-1) / kFp8E4M3Max).clamp_min(1e-30f);  // [B, H, N]
        span.payload = fp8_e4m3_encode(xf / scale.unsqueeze(-1));
        span.token_scales = scale;
    }
};

// QVG: k-means smoothing stages, then FP8-scaled group quantization of the last residual.
// With 0 stages this is RTN.
class QvgCodec final : public Codec {
  public:
    explicit QvgCodec(const CodecConfig& c) : Codec(c) {}

    at::Tensor decode_float(const EncodedSpan& span) const override {
        at::Tensor y = scalar_part(span);
        // Reference order: q * s first, then each stage's centroids, all in fp32.
        for (const auto& st : span.stages) y = y + stage_values(st, span.shape);
        return y;
    }

  protected:
    // The residual stays in BF16 between stages (as in the reference); a BF16 span is never
    // widened to fp32 at all: k-means and the fused quantization kernel read it as it is.
    void encode_into(const at::Tensor& x, const EncodeContext& ctx, EncodedSpan& span,
                     Telemetry& t) const override {
        const auto& shape = span.shape;
        const int64_t b = shape[0], h = shape[1], n = shape[2], d = shape[3];
        const int64_t c = config_.centroids;
        at::Tensor r =
            (x.scalar_type() == at::kBFloat16 ? x : x.to(at::kFloat)).view({b * h, n, d});
        const GroupQuantSpec spec = spec_of(config_);
        // The fused kernels quantize per token (the range search included); keys held per
        // channel take the ATen path.
        [[maybe_unused]] const bool fusable = !per_channel(config_, ctx.role);
        for (int s = 0; s < config_.stages; ++s) {
            KMeansOptions opt;
            opt.centroids = c;
            opt.iterations = config_.iterations;
            opt.seed = Rng::mix(Rng::mix(config_.seed, ctx.seed), static_cast<uint64_t>(s));
            opt.groups_per_item = h;  // each batch row (walk) as it would be encoded alone
            at::Tensor warm;
            if (config_.warm_start && ctx.previous != nullptr &&
                ctx.previous->stages.size() > static_cast<size_t>(s)) {
                const SpanStage& prev = ctx.previous->stages[s];
                if (prev.centroids.numel() == b * h * c * d)
                    warm = centroids_bf16(prev).view({b * h, c, d});
            }
            KMeansResult km = kmeans(r, opt, warm);
            const at::Tensor ids = km.ids.view({b, h, n});
            const at::Tensor cent = km.centroids.view({b, h, c, d});
            SpanStage stage = config_.codebook_bits == 16
                                  ? SpanStage{ids, cent}
                                  : held_codebook(ids, cent, config_.codebook_bits);
            // The residual is taken against the centroids as stored (their values are exact in
            // BF16), so the scalar codes absorb the rounding.
            if (config_.codebook_bits != 16)
                km.centroids = centroids_bf16(stage).view({b * h, c, d});
            span.stages.push_back(std::move(stage));
            // Last stage: residual, scales, codes and error sums in one pass.
            if (fusable && s + 1 == config_.stages) {
                detail::ResidualQuantResult fused;
                if (residual_quant_fused(r, km.ids, km.centroids, spec, fused)) {
                    mark_phase(fused_phase(r, "residual + scales + codes"));
                    const at::Tensor totals = fused_totals(fused);
                    t.stage_residual_sq.push_back(totals[0]);
                    if (config_.stages == 1) {  // r was X itself
                        t.error_sq = totals[1];
                        t.input_sq = totals[2];
                    }
                    span.quant = reshaped(fused.quant, b, h, n);
                    return;
                }
            }
            at::Tensor idx = km.ids.to(at::kLong).unsqueeze(-1).expand({b * h, n, d});
            at::Tensor picked = km.centroids.to(at::kFloat).gather(1, idx);
            // The reference keeps residuals in bf16 between stages.
            r = (r.to(at::kFloat) - picked).to(at::kBFloat16);
            t.stage_residual_sq.push_back(r.to(at::kFloat).pow(2).sum());
        }
        if (fusable && config_.stages == 0) {
            detail::ResidualQuantResult fused;
            if (residual_quant_fused(r, {}, {}, spec, fused)) {
                mark_phase(fused_phase(r, "scales + codes"));
                const at::Tensor totals = fused_totals(fused);
                t.error_sq = totals[1];
                t.input_sq = totals[2];
                span.quant = reshaped(fused.quant, b, h, n);
                return;
            }
        }
        span.quant = quantize_residual(r.to(at::kFloat).view({b, h, n, d}), config_, ctx.role);
        mark_phase("residuals + scales + codes (ATen)");
    }

  private:
    // The CUDA kernel on the GPU, the host loop on the CPU (the same bits).
    static bool residual_quant_fused(const at::Tensor& x, const at::Tensor& ids,
                                     const at::Tensor& centroids, const GroupQuantSpec& spec,
                                     detail::ResidualQuantResult& out) {
#ifdef QVG_HAVE_CUDA
        if (x.is_cuda()) return detail::residual_quant_cuda(x, ids, centroids, spec, out);
#endif
        return detail::residual_quant_host(x, ids, centroids, spec, out);
    }
    static std::string fused_phase(const at::Tensor& x, const char* what) {
        return std::string(what) + (x.is_cuda() ? " (fused kernel)" : " (fused, host)");
    }
    // The fused pass's per-token sums totalled in double, one reduction for all three: [3] =
    // (||R||^2, ||X - decode||^2, ||X||^2).
    static at::Tensor fused_totals(const detail::ResidualQuantResult& fused) {
        at::Tensor totals = fused.sums.sum({1, 2}, /*keepdim=*/false, at::kDouble);
        mark_phase("telemetry sums (one reduction)");
        return totals;
    }
    // [B*H, N, k] kernel outputs -> [B, H, N, k]
    static GroupQuantized reshaped(const GroupQuantized& q, int64_t b, int64_t h, int64_t n) {
        auto view = [&](const at::Tensor& x) {
            return x.defined() ? x.view({b, h, n, x.size(-1)}) : x;
        };
        return {view(q.codes), view(q.scales), view(q.zeros)};
    }
};

// KIVI: asymmetric; keys per channel (groups of G tokens, quantize_channels), values per token
// (groups of G channels).
class KiviCodec final : public Codec {
  public:
    explicit KiviCodec(const CodecConfig& c) : Codec(c) {}

    at::Tensor decode_float(const EncodedSpan& span) const override {
        const GroupQuantSpec spec = spec_of(span.config);
        if (span.role == KVRole::kValue) return dequantize_groups(span.quant, spec);
        return dequantize_channels(span.quant, spec, span.shape[2]);
    }

  protected:
    void encode_into(const at::Tensor& x, const EncodeContext& ctx, EncodedSpan& span,
                     Telemetry&) const override {
        const at::Tensor xf = x.to(at::kFloat);
        if (ctx.role == KVRole::kValue) {
            span.quant = quantize_groups(xf, spec_of(config_));
            return;
        }
        span.quant = quantize_channels(xf, spec_of(config_));
    }
};

// QuaRot-style: a randomized Hadamard rotation of the head dimension spreads channel outliers
// before symmetric RTN; decode rotates back. The rotation is fixed by the codec's seed (like a
// model constant), so it costs no bytes per span.
class QuarotCodec final : public Codec {
  public:
    explicit QuarotCodec(const CodecConfig& c) : Codec(c) {}

    at::Tensor decode_float(const EncodedSpan& span) const override {
        at::Tensor y = dequantize_groups(span.quant, spec_of(span.config));
        auto [hadamard, signs] = rotation(span.shape[3], y.device());
        return at::matmul(y, hadamard) * signs;  // H is symmetric and orthonormal
    }

  protected:
    void encode_into(const at::Tensor& x, const EncodeContext&, EncodedSpan& span,
                     Telemetry&) const override {
        const at::Tensor xf = x.to(at::kFloat);
        auto [hadamard, signs] = rotation(xf.size(3), xf.device());
        span.quant = quantize_groups(at::matmul(xf * signs, hadamard), spec_of(config_));
    }

  private:
    std::pair<at::Tensor, at::Tensor> rotation(int64_t d, at::Device device) const {
        QVG_CHECK(d > 0 && (d & (d - 1)) == 0, "QuaRot needs a power-of-two head dimension, got {}",
                  d);
        at::Tensor h = at::ones({1, 1}, at::kFloat);
        while (h.size(0) < d) {
            h = at::cat({at::cat({h, h}, 1), at::cat({h, -h}, 1)}, 0);  // Sylvester construction
        }
        h = h / std::sqrt(static_cast<double>(d));
        Rng rng(Rng::mix(config_.seed, 0x51a7u));
        std::vector<float> signs(static_cast<size_t>(d));
        for (auto& s : signs) s = (rng.next() >> 63) ? -1.0f : 1.0f;
        return {h.to(device), at::tensor(signs, at::kFloat).to(device)};
    }
};

}  // namespace

std::unique_ptr<Codec> make_codec(const CodecConfig& config) {
    switch (config.method) {
        case CodecMethod::kBf16:
            return std::make_unique<Bf16Codec>(config);
        case CodecMethod::kFp8:
            return std::make_unique<Fp8Codec>(config);
        case CodecMethod::kRtn: {
            CodecConfig c = config;
            c.stages = 0;
            return std::make_unique<QvgCodec>(c);
        }
        case CodecMethod::kQvg:
            return std::make_unique<QvgCodec>(config);
        case CodecMethod::kKivi:
            return std::make_unique<KiviCodec>(config);
        case CodecMethod::kQuarot:
            return std::make_unique<QuarotCodec>(config);
    }
    fail("unknown codec method");
}

void requantize_without_stages(EncodedSpan& span, int keep) {
    at::Tensor residual = scalar_part(span);
    for (size_t s = static_cast<size_t>(keep); s < span.stages.size(); ++s) {
        residual = residual + stage_values(span.stages[s], span.shape);
    }
    span.quant = quantize_residual(residual, span.config, span.role);
    span.stages.resize(static_cast<size_t>(keep));
    span.stage_rel_error.resize(static_cast<size_t>(keep));
    span.config.stages = keep;
}

int64_t kivi_expected_bytes(const CodecConfig& c, KVRole role, int64_t batch, int64_t heads,
                            int64_t tokens, int64_t dim) {
    // Keys: per channel over tokens padded to whole groups. Values: per token over channels.
    // Both store a scale and a zero point per group.
    const int64_t padded =
        role == KVRole::kKey ? (tokens + c.group - 1) / c.group * c.group : tokens;
    const int64_t elems = batch * heads * padded * dim;
    return elems * c.bits / 8 + 2 * elems / c.group;
}

}  // namespace qvg::core::detail
