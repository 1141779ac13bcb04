#pragma once
// The KV cache the viewer runs with, as the --cache option and the controls panel describe it.
//
//   --cache qvg,bits=2,group=32,stages=1,span=24,sink=3,window=144,centroids=32,asym=1
//   --cache bf16,sink=3,window=144
//
// The first item is the codec (qvg, bf16, fp8, rtn, kivi, quarot); the others are optional.

#include <qvg/core/kv_cache.h>
#include <qvg/render/overlay.h>

#include <cstdint>
#include <string>

namespace qvg::app {

struct CacheSettings {
    core::CodecMethod method = core::CodecMethod::kQvg;
    int bits = 2;
    int group = 32;
    int stages = 1;
    int span_frames = 24;  // Self-Forcing: 8 blocks of 3
    int sink_frames = 3;
    int window_frames = 144;  // 0 keeps everything
    // Fewer than the paper's 256: the test model's spans hold only ~1000 tokens per head, where
    // 256 codebook entries would cost more than they save.
    int centroids = 32;
    int iterations = 2;
    // A zero point beside each scale (rtn, qvg, quarot; KIVI always has one): 4 INT2 levels
    // instead of 3, for one more FP8 byte per group.
    bool asymmetric = false;
    // The encoder searches each group's range for the least error (same bytes and decoding).
    bool clip_search = false;
    // QVG/RTN: the keys' last residual per channel, in groups of `group` tokens.
    bool channel_keys = false;
    // QVG: bits per codebook value, 16 (BF16), 8 (FP8 E4M3) or 4 (INT4 per centroid).
    int codebook_bits = 16;

    bool operator==(const CacheSettings&) const = default;
};

struct LoadedModel;

// The cache a model starts with when none was chosen (--cache, the controls panel, or a choice
// saved in the settings). Wan/Self-Forcing models: CacheSettings{} (the paper's symmetric codes
// and BF16 codebooks). World models, whose spans hold about a thousand tokens per head: the QVG
// configuration that lost the least on the built-in world's return walks at KIVI INT2 G32's
// bytes (assets/world/MODEL_CARD.md): zero points, groups of 64 channels, 30 INT4 centroids,
// 8 k-means iterations and the range search; groups and centroids shrink to fit a smaller
// model's heads and latent frames.
CacheSettings default_cache_settings(const LoadedModel& model);

// Throws std::invalid_argument naming the item that is wrong.
CacheSettings parse_cache_spec(const std::string& spec);
std::string cache_spec(const CacheSettings& settings);

// The policy for a model whose heads are head_dim wide; the codec config is validated (throws
// qvg::core::Error with the field's name).
core::CachePolicy cache_policy(const CacheSettings& settings, std::uint64_t seed);

// The controls panel's state for these settings.
render::OverlayControls overlay_controls(const CacheSettings& settings, std::uint64_t seed,
                                         bool paused);

}  // namespace qvg::app
