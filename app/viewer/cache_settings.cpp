#include "cache_settings.h"

#include "model_loader.h"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace qvg::app {
namespace {

int parse_int(const std::string& key, const std::string& value) {
    int out = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
    if (ec != std::errc() || ptr != value.data() + value.size()) {
        throw std::invalid_argument("--cache: " + key + " wants a whole number, got '" + value +
                                    "'");
    }
    return out;
}

}  // namespace

CacheSettings default_cache_settings(const LoadedModel& model) {
    CacheSettings s;
    if (model.world_model == nullptr) return s;
    const core::CacheShape shape = cache_shape(model);
    int group = 0;
    for (int g : {64, 32, 16}) {
        if (shape.head_dim % g == 0) {
            group = g;
            break;
        }
    }
    if (group == 0) return s;  // no QVG group fits these heads: the codec will say so
    s.group = group;
    s.asymmetric = true;
    s.clip_search = true;
    s.codebook_bits = 4;
    s.iterations = 8;
    // A span holds at least one latent frame's tokens.
    s.centroids = static_cast<int>(std::min<std::int64_t>(30, shape.tokens_per_frame));
    return s;
}

CacheSettings parse_cache_spec(const std::string& spec) {
    std::vector<std::string> items;
    std::stringstream in(spec);
    for (std::string item; std::getline(in, item, ',');) items.push_back(item);
    if (items.empty() || items.front().empty()) {
        throw std::invalid_argument("--cache: expected a codec name first (qvg, bf16, ...), got '" +
                                    spec + "'");
    }
    CacheSettings s;
    try {
        s.method = core::parse_codec_method(items.front());
    } catch (const std::exception& e) {
        throw std::invalid_argument(std::string("--cache: ") + e.what());
    }
    const core::CodecConfig defaults = core::default_codec_config(s.method);
    s.bits = defaults.bits;
    s.group = s.method == core::CodecMethod::kQvg ? 32 : defaults.group;
    s.stages = defaults.stages;
    for (std::size_t i = 1; i < items.size(); ++i) {
        const auto eq = items[i].find('=');
        if (eq == std::string::npos) {
            throw std::invalid_argument("--cache: expected key=value, got '" + items[i] + "'");
        }
        const std::string key = items[i].substr(0, eq);
        const int v = parse_int(key, items[i].substr(eq + 1));
        if (key == "bits") {
            s.bits = v;
        } else if (key == "group") {
            s.group = v;
        } else if (key == "stages") {
            s.stages = v;
        } else if (key == "span") {
            s.span_frames = v;
        } else if (key == "sink") {
            s.sink_frames = v;
        } else if (key == "window") {
            s.window_frames = v;
        } else if (key == "centroids") {
            s.centroids = v;
        } else if (key == "iterations") {
            s.iterations = v;
        } else if (key == "codebook") {
            s.codebook_bits = v;  // the codec checks it (16, 8 or 4) below
        } else if (key == "asym" || key == "clip" || key == "kch") {
            if (v != 0 && v != 1) throw std::invalid_argument("--cache: " + key + " wants 0 or 1");
            (key == "asym"   ? s.asymmetric
             : key == "clip" ? s.clip_search
                             : s.channel_keys) = v == 1;
        } else {
            throw std::invalid_argument("--cache: unknown key '" + key +
                                        "' (expected bits, group, stages, span, sink, window, "
                                        "centroids, iterations, codebook, asym, clip, kch)");
        }
    }
    if (s.span_frames < 1) throw std::invalid_argument("--cache: span must be at least 1");
    if (s.sink_frames < 0 || s.window_frames < 0) {
        throw std::invalid_argument("--cache: sink and window must not be negative");
    }
    try {
        cache_policy(s, 0);  // the codec's own checks, with their messages
    } catch (const std::exception& e) {
        throw std::invalid_argument(std::string("--cache: ") + e.what());
    }
    return s;
}

std::string cache_spec(const CacheSettings& s) {
    std::ostringstream out;
    out << core::codec_method_name(s.method);
    if (s.method != core::CodecMethod::kBf16) out << ",bits=" << s.bits << ",group=" << s.group;
    if (s.method == core::CodecMethod::kQvg) {
        out << ",stages=" << s.stages << ",centroids=" << s.centroids;
    }
    if (s.asymmetric) out << ",asym=1";
    if (s.clip_search) out << ",clip=1";
    if (s.channel_keys) out << ",kch=1";
    if (s.codebook_bits != 16) out << ",codebook=" << s.codebook_bits;
    out << ",span=" << s.span_frames << ",sink=" << s.sink_frames << ",window=" << s.window_frames;
    return out.str();
}

core::CachePolicy cache_policy(const CacheSettings& s, std::uint64_t seed) {
    core::CachePolicy p;
    p.codec = core::default_codec_config(s.method);
    if (s.method != core::CodecMethod::kBf16 && s.method != core::CodecMethod::kFp8) {
        p.codec.bits = s.bits;
        p.codec.group = s.group;
        if (s.asymmetric) p.codec.asymmetric = true;
        if (s.clip_search) p.codec.clip_search = true;
        if (s.channel_keys) p.codec.channel_keys = true;
    }
    if (s.method == core::CodecMethod::kQvg) {
        p.codec.stages = s.stages;
        p.codec.centroids = s.centroids;
        p.codec.iterations = s.iterations;
        p.codec.codebook_bits = s.codebook_bits;
    }
    p.codec.seed = seed;
    p.span_frames = s.span_frames;
    p.sink_frames = s.sink_frames;
    p.window_frames = s.window_frames;
    p.seed = seed;
    // Models computing in float32 (on the CPU) keep BF16 rows, so the memory overlay shows
    // what a BF16 cache holds.
    p.hold_bf16 = true;
    p.validate();
    return p;
}

render::OverlayControls overlay_controls(const CacheSettings& s, std::uint64_t seed, bool paused) {
    render::OverlayControls c;
    c.stages = s.stages;
    c.bits = s.method == core::CodecMethod::kBf16 ? render::OverlayBits::kBf16
             : s.bits == 4                        ? render::OverlayBits::kInt4
                                                  : render::OverlayBits::kInt2;
    c.group = s.group;
    c.span_frames = s.span_frames;
    c.sink_frames = s.sink_frames;
    c.window_frames = s.window_frames;
    c.seed = seed;
    c.paused = paused;
    c.stages_available = s.method == core::CodecMethod::kQvg;
    return c;
}

}  // namespace qvg::app
