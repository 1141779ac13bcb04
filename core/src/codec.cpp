#include "qvg/core/codec.h"

#include <atomic>
#include <cmath>

#include <ATen/ATen.h>

#include "codec_impl.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "span_decode.h"

namespace qvg::core {
namespace {

struct MethodName {
    CodecMethod method;
    const char* name;
    const char* label;
};
constexpr MethodName kMethods[] = {
    {CodecMethod::kBf16, "bf16", "BF16"}, {CodecMethod::kFp8, "fp8", "FP8"},
    {CodecMethod::kRtn, "rtn", "RTN"},    {CodecMethod::kQvg, "qvg", "QVG"},
    {CodecMethod::kKivi, "kivi", "KIVI"}, {CodecMethod::kQuarot, "quarot", "QuaRot"},
};

const char* label(CodecMethod m) {
    for (const auto& e : kMethods) {
        if (e.method == m) return e.label;
    }
    return "?";
}

double norm2(const at::Tensor& t) { return t.to(at::kDouble).norm().item<double>(); }

}  // namespace

CodecMethod parse_codec_method(const std::string& name) {
    for (const auto& e : kMethods) {
        if (name == e.name) return e.method;
    }
    fail("unknown codec '{}' (expected one of bf16, fp8, rtn, qvg, kivi, quarot)", name);
}

std::string codec_method_name(CodecMethod method) {
    for (const auto& e : kMethods) {
        if (e.method == method) return e.name;
    }
    return "?";
}

CodecConfig default_codec_config(CodecMethod method) {
    CodecConfig c;
    c.method = method;
    switch (method) {
        case CodecMethod::kRtn:
        case CodecMethod::kQuarot:
            c.group = 16;
            c.stages = 0;
            break;
        case CodecMethod::kKivi:
            c.group = 32;
            c.stages = 0;
            c.asymmetric = true;
            break;
        case CodecMethod::kBf16:
        case CodecMethod::kFp8:
            c.stages = 0;
            break;
        case CodecMethod::kQvg:
            break;
    }
    return c;
}

void CodecConfig::validate() const {
    QVG_CHECK(bits == 2 || bits == 4, "codec bits must be 2 or 4, got {}", bits);
    QVG_CHECK(group == 16 || group == 32 || group == 64 || group == 128,
              "codec group must be 16, 32, 64 or 128, got {}", group);
    QVG_CHECK(stages >= 0 && stages <= 4, "QVG stages must be in 0..4, got {}", stages);
    QVG_CHECK(centroids >= 1 && centroids <= 256, "centroids must be in 1..256 (uint8 ids), got {}",
              centroids);
    QVG_CHECK(iterations >= 0 && iterations <= 1000,
              "k-means iterations must be in 0..1000, got {}", iterations);
    QVG_CHECK(method == CodecMethod::kQvg || stages == 0,
              "only the qvg codec has PRQ stages; {} was given stages={}",
              codec_method_name(method), stages);
    QVG_CHECK(method != CodecMethod::kKivi || asymmetric, "KIVI is asymmetric by definition");
    QVG_CHECK(!clip_search || (method != CodecMethod::kBf16 && method != CodecMethod::kFp8),
              "the range search is for the group quantizers (rtn, qvg, kivi, quarot); {} was "
              "given clip_search",
              codec_method_name(method));
    QVG_CHECK(codebook_bits == 16 || codebook_bits == 8 || codebook_bits == 4,
              "codebook bits must be 16 (BF16), 8 (FP8) or 4 (INT4), got {}", codebook_bits);
    QVG_CHECK(codebook_bits == 16 || method == CodecMethod::kQvg,
              "FP8 and INT4 codebooks are a QVG option; {} was given codebook_bits={}",
              codec_method_name(method), codebook_bits);
    QVG_CHECK(!channel_keys || method == CodecMethod::kQvg || method == CodecMethod::kRtn,
              "keys per channel are a QVG/RTN option (KIVI always quantizes keys so); {} was "
              "given channel_keys",
              codec_method_name(method));
}

std::string CodecConfig::describe() const {
    switch (method) {
        case CodecMethod::kBf16:
        case CodecMethod::kFp8:
            return label(method);
        case CodecMethod::kQvg:
            return fmt::format("QVG INT{} G{} S{}{}{}{}{}", bits, group, stages,
                               asymmetric ? " asym" : "", channel_keys ? " K/ch" : "",
                               clip_search ? " clip" : "",
                               codebook_bits == 8   ? " FP8-codebooks"
                               : codebook_bits == 4 ? " INT4-codebooks"
                                                    : "");
        default:
            return fmt::format("{} INT{} G{}{}{}{}", label(method), bits, group,
                               asymmetric && method != CodecMethod::kKivi ? " asym" : "",
                               channel_keys ? " K/ch" : "", clip_search ? " clip" : "");
    }
}

at::Tensor centroids_bf16(const SpanStage& stage) {
    if (stage.centroid_scales.defined()) {
        // INT4 entries are code * scale + zero rounded once to BF16: what the CUDA decode reads,
        // and what the encoder took the residual against.
        return dequantize_groups({stage.centroids, stage.centroid_scales, stage.centroid_zeros},
                                 detail::int4_codebook_spec(stage.centroids.size(-1) * 2))
            .to(at::kBFloat16);
    }
    if (stage.centroids.scalar_type() == at::kByte) {  // FP8 E4M3 bits: one exact cast
        return stage.centroids.view(at::kFloat8_e4m3fn).to(at::kBFloat16);
    }
    return stage.centroids;
}

at::Tensor centroid_values(const SpanStage& stage) { return centroids_bf16(stage).to(at::kFloat); }

int64_t EncodedSpan::bytes() const {
    int64_t n = quant.nbytes();
    if (payload.defined()) n += payload.nbytes();
    if (token_scales.defined()) n += token_scales.nbytes();
    for (const auto& s : stages) {
        n += s.ids.nbytes() + s.centroids.nbytes();
        if (s.centroid_scales.defined()) n += s.centroid_scales.nbytes();
        if (s.centroid_zeros.defined()) n += s.centroid_zeros.nbytes();
    }
    return n;
}

void validate_span_input(const at::Tensor& x, const CodecConfig& config) {
    QVG_CHECK(x.defined(), "span input is undefined");
    QVG_CHECK(x.dim() == 4, "span input must be [B, H, N, D], got {} dimensions ({})", x.dim(),
              fmt::join(x.sizes(), "x"));
    QVG_CHECK(x.is_floating_point(), "span input must be floating point, got {}",
              c10::toString(x.scalar_type()));
    QVG_CHECK(x.size(2) > 0, "span input is empty (N = 0 tokens)");
    QVG_CHECK(x.size(0) > 0 && x.size(1) > 0 && x.size(3) > 0,
              "span input has an empty dimension ({})", fmt::join(x.sizes(), "x"));
    if (config.method != CodecMethod::kBf16 && config.method != CodecMethod::kFp8) {
        QVG_CHECK(x.size(3) % config.group == 0,
                  "head dimension {} is not a multiple of the group size {}", x.size(3),
                  config.group);
    }
    if (config.method == CodecMethod::kQvg && config.stages > 0) {
        QVG_CHECK(config.centroids <= x.size(2),
                  "QVG asked for {} centroids but the span has only {} tokens", config.centroids,
                  x.size(2));
    }
}

EncodedSpan Codec::encode(const at::Tensor& x, const EncodeContext& context) const {
    validate_span_input(x, config_);
    EncodedSpan span;
    span.config = config_;
    span.role = context.role;
    span.shape = x.sizes().vec();
    span.dtype = x.scalar_type();
    const at::Tensor xc = x.contiguous();
    Telemetry t;
    encode_into(xc, context, span, t);
    if (!t.error_sq.defined())
        t.error_sq = (decode(span).to(at::kFloat) - xc.to(at::kFloat)).pow(2).sum();
    // ||X|| from the method's sum of squares when it made one, else with the cast fused into the
    // reduction (no widened copy of the span). It is finite exactly when every value is, short
    // of an overflow of the sum of squares; only a non-finite result pays for the element-wise
    // check.
    const bool have_sq = t.input_sq.defined();
    std::vector<at::Tensor> parts = {
        have_sq ? t.input_sq.to(at::kDouble)
                : at::linalg_vector_norm(xc, 2, std::nullopt, false, at::kDouble),
        t.error_sq.to(at::kDouble)};
    for (const auto& r : t.stage_residual_sq) parts.push_back(r.to(at::kDouble));
    // One transfer for every number: no per-stage synchronisation.
    const at::Tensor values = at::stack(parts).cpu();
    mark_phase("telemetry transfer (waits for the device)");
    const double* v = values.data_ptr<double>();
    double norm = have_sq ? std::sqrt(v[0]) : v[0];
    if (!std::isfinite(norm)) {
        const int64_t bad = at::isfinite(xc).logical_not().sum().item<int64_t>();
        QVG_CHECK(bad == 0, "span input contains NaN or Inf values ({} of {})", bad, x.numel());
        norm = xc.to(at::kDouble).norm().item<double>();  // huge but finite values
    }
    span.input_norm = norm;
    auto relative = [&](double sq) {
        return span.input_norm > 0 ? std::sqrt(sq) / span.input_norm : 0.0;
    };
    span.rel_error = relative(v[1]);
    for (size_t i = 0; i < t.stage_residual_sq.size(); ++i)
        span.stage_rel_error.push_back(relative(v[2 + i]));
    return span;
}

at::Tensor Codec::decode(const EncodedSpan& span) const {
    return decode_float(span).to(span.dtype);
}

namespace {
std::atomic<bool> generic_decode_on{false};
}  // namespace

void Codec::set_generic_decode(bool generic) { generic_decode_on.store(generic); }
bool Codec::generic_decode() { return generic_decode_on.load(); }

void Codec::decode_into(const EncodedSpan& span, const at::Tensor& out, const RopeAngles* rope,
                        const DecodeLaunch* launch) const {
    const auto& sh = span.shape;
    QVG_CHECK(out.dim() == 4 && out.size(0) == sh[0] && out.size(1) == sh[2] &&
                  out.size(2) == sh[1] && out.size(3) == sh[3],
              "decode_into: output must be [{}, {}, {}, {}], got {}", sh[0], sh[2], sh[1], sh[3],
              fmt::join(out.sizes(), "x"));
    // A float32 output widens the span's values (a float32 model reading BF16-held history).
    QVG_CHECK(out.scalar_type() == span.dtype || out.scalar_type() == at::kFloat,
              "decode_into: output is {} but the span decodes to {}",
              c10::toString(out.scalar_type()), c10::toString(span.dtype));
    QVG_CHECK(rope == nullptr || rope->tokens() == sh[2],
              "decode_into: RoPE angles for {} tokens, span has {}", rope ? rope->tokens() : 0,
              sh[2]);
    if (!generic_decode()) {
#ifdef QVG_HAVE_CUDA
        if (out.is_cuda() && detail::decode_span_cuda(span, out, rope, launch)) return;
#endif
        // One pass on the host, the same bits as the ATen ops below (a CPU model reads its
        // whole history through here at every step).
        if (out.device().is_cpu() && detail::decode_span_host(span, out, rope)) return;
    }
    const at::Tensor decoded = decode(span).transpose(1, 2);
    if (rope != nullptr) {
        WanRope::apply_into(decoded, *rope, out);
    } else {
        out.copy_(decoded);
    }
}

#ifndef QVG_HAVE_CUDA
void write_decode_ceiling(const at::Tensor& /*out*/, DecodeWriteCeiling /*kind*/) {
    fail("write_decode_ceiling: qvg was built without CUDA");
}
#endif

void Codec::drop_stages(EncodedSpan& span, int keep) const {
    QVG_CHECK(span.config.method == CodecMethod::kQvg, "only QVG spans have stages to drop ({})",
              span.config.describe());
    const int have = static_cast<int>(span.stages.size());
    QVG_CHECK(keep >= 0 && keep <= have, "cannot keep {} of {} stages", keep, have);
    if (keep == have) return;
    const at::Tensor before = decode_float(span);
    detail::requantize_without_stages(span, keep);
    const at::Tensor after = decode_float(span);
    // The input is gone; bound the new error by the old one plus the change.
    const double moved = span.input_norm > 0 ? norm2(after - before) / span.input_norm : 0.0;
    span.rel_error += moved;
    span.rel_error_is_bound = true;
}

int64_t Codec::expected_bytes(int64_t batch, int64_t heads, int64_t tokens, int64_t dim,
                              KVRole role) const {
    const int64_t elems = batch * heads * tokens * dim;
    const CodecConfig& c = config_;
    switch (c.method) {
        case CodecMethod::kBf16:
            return elems * 2;
        case CodecMethod::kFp8:
            return elems + batch * heads * tokens * 4;
        case CodecMethod::kKivi:
            return detail::kivi_expected_bytes(c, role, batch, heads, tokens, dim);
        default: {
            // Keys per channel: the token axis padded to whole groups, as KIVI's.
            const int64_t scalar_elems =
                c.channel_keys && role == KVRole::kKey
                    ? batch * heads * ((tokens + c.group - 1) / c.group * c.group) * dim
                    : elems;
            const int64_t groups = scalar_elems / c.group;
            int64_t n = scalar_elems * c.bits / 8 + groups * (c.asymmetric ? 2 : 1);
            // Per centroid: D values at codebook_bits, and an FP8 scale and zero for INT4.
            const int64_t per_centroid = dim * c.codebook_bits / 8 + (c.codebook_bits == 4 ? 2 : 0);
            n += int64_t{c.stages} *
                 (batch * heads * tokens + batch * heads * c.centroids * per_centroid);
            return n;
        }
    }
}

std::unique_ptr<Codec> Codec::create(const CodecConfig& config) {
    config.validate();
    return detail::make_codec(config);
}

}  // namespace qvg::core
