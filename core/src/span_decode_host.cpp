// The fused decode's parameters (shared with the CUDA path) and the decode on the host.

#include "span_decode.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "qvg/core/error.h"
#include "qvg/core/wan_rope.h"

namespace qvg::core::detail {

bool span_decode_params(const EncodedSpan& span, kernels::QvgDecodeParams& p,
                        std::vector<at::Tensor>& widened,
                        const std::function<at::Tensor(const SpanStage&)>& widen_int4) {
    const CodecConfig& c = span.config;
    if (c.method != CodecMethod::kQvg && c.method != CodecMethod::kRtn) return false;
    if (c.channel_keys && span.role == KVRole::kKey) return false;  // the kernels read per token
    if (span.dtype != at::kBFloat16) return false;
    const GroupQuantized& q = span.quant;
    if (!q.codes.is_contiguous() || !q.scales.is_contiguous() ||
        (q.zeros.defined() && !q.zeros.is_contiguous())) {
        return false;
    }
    p.codes = q.codes.data_ptr<uint8_t>();
    p.scales = q.scales.data_ptr<uint8_t>();
    p.zeros = q.zeros.defined() ? q.zeros.data_ptr<uint8_t>() : nullptr;
    p.num_stages = static_cast<int>(span.stages.size());
    for (size_t s = 0; s < span.stages.size(); ++s) {
        const SpanStage& st = span.stages[s];
        if (!st.ids.is_contiguous() || !st.centroids.is_contiguous()) return false;
        p.ids[s] = st.ids.data_ptr<uint8_t>();
        if (st.centroids.scalar_type() == at::kByte && !st.centroid_scales.defined()) {
            p.centroids_fp8[s] = st.centroids.data_ptr<uint8_t>();  // FP8 E4M3 bits
            p.num_centroids = st.centroids.size(2);
            continue;
        }
        const at::Tensor& cent = st.centroids.scalar_type() == at::kByte
                                     ? widened.emplace_back(widen_int4(st))
                                     : st.centroids;
        p.centroids[s] = reinterpret_cast<const uint16_t*>(cent.data_ptr<at::BFloat16>());
        p.num_centroids = cent.size(2);
    }
    p.batch = span.shape[0];
    p.heads = span.shape[1];
    p.tokens = span.shape[2];
    p.dim = span.shape[3];
    p.bits = c.bits;
    p.group = c.group;
    p.asymmetric = c.asymmetric;
    return true;
}

at::Tensor widen_int4_codebook(
    const SpanStage& st, const std::function<void(const kernels::Int4CodebookParams&)>& widen) {
    QVG_CHECK(st.centroids.is_contiguous() && st.centroid_scales.is_contiguous() &&
                  st.centroid_zeros.is_contiguous(),
              "INT4 codebook codes, scales and zeros must be contiguous");
    const auto sizes = st.centroids.sizes();
    at::Tensor out = at::empty({sizes[0], sizes[1], sizes[2], sizes[3] * 2},
                               st.centroids.options().dtype(at::kBFloat16));
    kernels::Int4CodebookParams p;
    p.codes = st.centroids.data_ptr<uint8_t>();
    p.scales = st.centroid_scales.data_ptr<uint8_t>();
    p.zeros = st.centroid_zeros.data_ptr<uint8_t>();
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.rows = sizes[0] * sizes[1] * sizes[2];
    p.dim = sizes[3] * 2;
    widen(p);
    return out;
}

bool decode_span_host(const EncodedSpan& span, const at::Tensor& out, const RopeAngles* rope) {
    if (!out.device().is_cpu() || out.stride(3) != 1 ||
        (out.scalar_type() != at::kBFloat16 && out.scalar_type() != at::kFloat)) {
        return false;
    }
    if (!span.quant.codes.device().is_cpu()) return false;
    kernels::QvgDecodeParams p;
    std::vector<at::Tensor> widened;
    const auto widen_int4 = [](const SpanStage& st) {
        return widen_int4_codebook(st, kernels::widen_int4_codebook_reference);
    };
    if (!span_decode_params(span, p, widened, widen_int4)) return false;
    if (rope != nullptr) {
        if (!rope->cos.device().is_cpu() || rope->cos.scalar_type() != at::kFloat ||
            rope->sin.scalar_type() != at::kFloat || !rope->cos.is_contiguous() ||
            !rope->sin.is_contiguous() || rope->cos.numel() != p.tokens * p.dim / 2 ||
            rope->sin.numel() != rope->cos.numel()) {
            return false;
        }
        p.rope_cos = rope->cos.data_ptr<float>();
        p.rope_sin = rope->sin.data_ptr<float>();
    }
    p.out_stride_b = out.stride(0);
    p.out_stride_n = out.stride(1);
    p.out_stride_h = out.stride(2);
    // In float32 the output pointer only satisfies validate(): qvg_decode_host writes out_f32.
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr());
    if (*kernels::validate(p) != '\0') return false;  // a shape the decode does not take
    float* out_f32 = out.scalar_type() == at::kFloat ? out.data_ptr<float>() : nullptr;
    // Heads on LibTorch's intra-op threads (each writes its own rows), at least ~64K values a
    // task so that short spans stay on one thread.
    const int64_t per_head = std::max<int64_t>(p.tokens * p.dim, 1);
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / per_head);
    at::parallel_for(0, p.batch * p.heads, grain, [&](int64_t first, int64_t last) {
        kernels::qvg_decode_host(p, out_f32, first, last);
    });
    return true;
}

}  // namespace qvg::core::detail
