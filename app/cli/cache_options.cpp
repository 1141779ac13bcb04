#include "cache_options.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "qvg/core/codec.h"

namespace qvg::cli {
namespace {

nlohmann::json role_json(const core::RoleErrorStats& s) {
    return {{"last_stage_rel_error", s.last_stage_rel_error},
            {"last_rel_error", s.last_rel_error},
            {"mean_stage_rel_error", s.mean_stage_rel_error},
            {"mean_rel_error", s.mean_rel_error},
            {"is_bound", s.is_bound}};
}

}  // namespace

core::CachePolicy make_cache_policy(const CacheOptions& o, int64_t head_dim,
                                    int64_t tokens_per_frame) {
    core::CachePolicy p;
    p.codec = core::default_codec_config(core::parse_codec_method(o.codec));
    // The defaults group 64 channels (16 for RTN/QuaRot); small test models have fewer.
    p.codec.group = static_cast<int>(std::min<int64_t>(p.codec.group, head_dim));
    if (o.bits) p.codec.bits = *o.bits;
    if (o.group) p.codec.group = *o.group;
    if (o.stages) p.codec.stages = *o.stages;
    if (o.centroids) p.codec.centroids = *o.centroids;
    if (o.iterations) p.codec.iterations = *o.iterations;
    if (o.asymmetric) p.codec.asymmetric = true;
    if (o.channel_keys) p.codec.channel_keys = true;
    if (o.clip_search) p.codec.clip_search = true;
    p.codec.codebook_bits = o.codebook_bits;
    p.codec.seed = o.seed;
    p.span_frames = o.span_frames;
    p.lag_frames = o.lag_frames;
    p.sink_frames = o.sink_frames;
    p.window_frames = o.window_frames;
    p.seed = o.seed;
    if (o.history_bound > 0 && core::bound_history(p, o.history_bound) && !o.centroids) {
        // At most half the span's tokens per codebook, a power of two.
        int centroids = 1;
        while (centroids * 4 <= p.span_frames * tokens_per_frame) centroids *= 2;
        p.codec.centroids = std::min(p.codec.centroids, centroids);
    }
    p.validate();
    if (p.codec.compresses()) {
        core::validate_span_input(at::zeros({1, 1, p.span_frames * tokens_per_frame, head_dim}),
                                  p.codec);
    }
    return p;
}

nlohmann::json policy_json(const core::CachePolicy& p) {
    const core::CodecConfig& c = p.codec;
    return {{"method", core::codec_method_name(c.method)},
            {"codec", c.describe()},
            {"bits", c.bits},
            {"group", c.group},
            {"stages", c.stages},
            {"centroids", c.centroids},
            {"iterations", c.iterations},
            {"asymmetric", c.asymmetric},
            {"channel_keys", c.channel_keys},
            {"clip_search", c.clip_search},
            {"codebook_bits", c.codebook_bits},
            {"span_frames", p.span_frames},
            {"lag_frames", p.lag_frames},
            {"sink_frames", p.sink_frames},
            {"window_frames", p.window_frames},
            {"seed", p.seed}};
}

nlohmann::json cache_json(const core::CacheStats& st) {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t l = 0; l < st.layers.size(); ++l) {
        const core::LayerCacheStats& s = st.layers[l];
        layers.push_back({{"layer", l},
                          {"frames", s.frames},
                          {"sink_frames", s.sink_frames},
                          {"span_frames", s.span_frames},
                          {"tail_frames", s.tail_frames},
                          {"spans", s.spans},
                          {"bytes", s.bytes()},
                          {"sink_bytes", s.sink_bytes},
                          {"span_bytes", s.span_bytes},
                          {"tail_bytes", s.tail_bytes},
                          {"bf16_bytes", s.bf16_bytes},
                          {"key", role_json(s.key)},
                          {"value", role_json(s.value)}});
    }
    return {{"bytes", st.bytes},   {"bf16_bytes", st.bf16_bytes},   {"ratio", st.ratio()},
            {"frames", st.frames}, {"first_frame", st.first_frame}, {"layers", layers}};
}

}  // namespace qvg::cli
