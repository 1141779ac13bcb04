#pragma once
// The KV-cache policy a command runs with, from its options (`qvg generate`'s --cache, --bits,
// --group, ... and `qvg eval`'s cache list), and the policy and cache statistics as report JSON.

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "qvg/core/kv_cache.h"

namespace qvg::cli {

struct CacheOptions {
    std::string codec = "bf16";  // bf16, fp8, rtn, qvg, kivi or quarot
    // Unset: the method's default (default_codec_config), its group capped at the head size.
    std::optional<int> bits, group, stages, centroids, iterations;
    // Scale and zero point per group (4 INT2 levels instead of 3); KIVI always is.
    bool asymmetric = false;
    // QVG/RTN: the keys' last residual per channel, in groups of G tokens (KIVI's split).
    bool channel_keys = false;
    // The encoder searches each group's range for the least error (same bytes and decoding).
    bool clip_search = false;
    // QVG: bits per codebook value, 16 (BF16), 8 (FP8 E4M3) or 4 (INT4 per centroid).
    int codebook_bits = 16;
    int64_t span_frames = 24;
    int64_t lag_frames = 0;
    int64_t window_frames = 0;
    int64_t sink_frames = 0;
    uint64_t seed = 0;  // codec and cache streams
    // The longest history the model was trained on (0 = no bound): core::bound_history holds
    // the policy to it, and QVG's default centroid count shrinks to fit the shorter spans.
    int64_t history_bound = 0;
};

// The policy for a model with heads of `head_dim` and `tokens_per_frame` tokens per latent frame.
// Throws core::Error for an unknown codec or bad fields, and for a codec that could not encode a
// span of the size the cache will encode (group vs head size, centroids vs span tokens) now
// rather than when the first span forms mid-run.
core::CachePolicy make_cache_policy(const CacheOptions& options, int64_t head_dim,
                                    int64_t tokens_per_frame);

nlohmann::json policy_json(const core::CachePolicy& policy);
nlohmann::json cache_json(const core::CacheStats& stats);

}  // namespace qvg::cli
