#pragma once
// The cache configurations `qvg eval` compares, named on the command line:
//
//   <codec>[-int2|-int4][-g<group>][-s<stages>][-c<centroids>][-i<iterations>][-asym]
//       codec bf16, fp8, rtn, qvg, kivi or quarot (stages, centroids and k-means iterations for
//       qvg only; asym: a scale and a zero point per group); unset fields take the method's default
//       (default_codec_config: QVG INT2 G64 S1, RTN/QuaRot INT2 G16, KIVI INT2 G32), the group
//       capped at the model's head size, QVG centroids from --centroids. The whole history is kept.
//   window[-<N>]         BF16 codec, only the newest N latent frames kept
//   sink-window[-<N>]    BF16 codec, the context latents kept as a sink plus the newest N
// A window without N is sized to hold no more bytes than the budget reference (QVG INT2 G64 S1,
// kBudgetReference) holds at the end of the same trajectory. An explicit group must divide the
// head size (the default list leaves groups unset, so that it also runs on small test models).

#include <cstdint>
#include <string>
#include <vector>

#include "cache_options.h"

namespace qvg::cli {

inline constexpr const char* kBudgetReference = "qvg-int2-s1";

enum class EvalHistory { kFull, kWindow, kSinkWindow };

struct EvalCache {
    std::string name;  // as given
    CacheOptions options;
    EvalHistory history = EvalHistory::kFull;
    int64_t window_frames = 0;  // 0 with a window history: matched to the budget reference

    bool budget_matched() const { return history != EvalHistory::kFull && window_frames == 0; }
    // QVG INT2 G64 S1 (group left at its default) with the eval's centroids, however spelled.
    bool is_budget_reference() const;
    bool is_bf16_full() const;
};

// bf16, qvg-int2-s1, qvg-int2-s1-asym, qvg-int2-s2 .. s4, qvg-int4-s1, rtn-int2, kivi-int2,
// quarot-int2, fp8, window, sink-window.
std::vector<std::string> default_eval_caches();

// Throws core::Error naming the entry and the grammar.
EvalCache parse_eval_cache(const std::string& name);

}  // namespace qvg::cli
