#include "eval_caches.h"

#include <charconv>
#include <sstream>

#include "qvg/core/codec.h"
#include "qvg/core/error.h"

namespace qvg::cli {
namespace {

constexpr const char* kGrammar =
    "expected <codec>[-int2|-int4][-g<group>][-s<stages>][-c<centroids>][-i<iterations>][-asym]"
    "[-kch][-clip][-fp8c|-int4c] with codec bf16, fp8, rtn, qvg, kivi or quarot (stages, "
    "centroids, iterations and fp8c/int4c, FP8/INT4 codebooks: qvg; kch, keys per channel: qvg "
    "and rtn; clip, a range search per group), or "
    "window[-<latents>] or sink-window[-<latents>]";

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string part; std::getline(in, part, sep);) out.push_back(part);
    return out;
}

// A positive whole number after `prefix` characters of `token`, or fails naming the entry.
int number(const std::string& entry, const std::string& token, size_t prefix) {
    int v = 0;
    const char* first = token.data() + prefix;
    const char* last = token.data() + token.size();
    const auto [ptr, ec] = std::from_chars(first, last, v);
    QVG_CHECK(first != last && ec == std::errc() && ptr == last && v > 0,
              "cache '{}': '{}' is not a positive whole number ({})", entry, token.substr(prefix),
              kGrammar);
    return v;
}

}  // namespace

bool EvalCache::is_budget_reference() const {
    return history == EvalHistory::kFull && options.codec == "qvg" &&
           options.bits.value_or(2) == 2 && options.group.value_or(64) == 64 &&
           options.stages.value_or(1) == 1 && !options.centroids && !options.iterations &&
           !options.asymmetric && !options.channel_keys && !options.clip_search &&
           options.codebook_bits == 16;
}

bool EvalCache::is_bf16_full() const {
    return history == EvalHistory::kFull && options.codec == "bf16";
}

std::vector<std::string> default_eval_caches() {
    return {"bf16",        "qvg-int2-s1", "qvg-int2-s1-asym", "qvg-int2-s2", "qvg-int2-s3",
            "qvg-int2-s4", "qvg-int4-s1", "rtn-int2",         "kivi-int2",   "quarot-int2",
            "fp8",         "window",      "sink-window"};
}

EvalCache parse_eval_cache(const std::string& name) {
    const std::vector<std::string> tokens = split(name, '-');
    QVG_CHECK(!tokens.empty() && !tokens.front().empty(), "cache '{}': {}", name, kGrammar);
    EvalCache c;
    c.name = name;
    c.options.codec = "bf16";
    size_t i = 0;
    if (tokens[0] == "window" || tokens[0] == "sink") {
        c.history = EvalHistory::kWindow;
        if (tokens[0] == "sink") {
            QVG_CHECK(tokens.size() >= 2 && tokens[1] == "window", "cache '{}': {}", name,
                      kGrammar);
            c.history = EvalHistory::kSinkWindow;
            ++i;
        }
        ++i;
        if (i < tokens.size()) c.window_frames = number(name, tokens[i++], 0);
        QVG_CHECK(i == tokens.size(), "cache '{}': {}", name, kGrammar);
        return c;
    }
    try {
        core::parse_codec_method(tokens[0]);
    } catch (const core::Error&) {
        core::fail("unknown cache '{}': {}", name, kGrammar);
    }
    c.options.codec = tokens[0];
    const bool quantizes = tokens[0] != "bf16" && tokens[0] != "fp8";
    for (i = 1; i < tokens.size(); ++i) {
        const std::string& t = tokens[i];
        QVG_CHECK(quantizes, "cache '{}': {} takes no bits, group or stages ({})", name, tokens[0],
                  kGrammar);
        if (t == "clip") {  // before -c<centroids>
            c.options.clip_search = true;
        } else if ((t == "fp8c" || t == "int4c") && tokens[0] == "qvg") {  // before -i<iterations>
            c.options.codebook_bits = t == "fp8c" ? 8 : 4;
        } else if (t == "int2" || t == "int4") {
            c.options.bits = t == "int2" ? 2 : 4;
        } else if (t.size() > 1 && t[0] == 'g') {
            c.options.group = number(name, t, 1);
        } else if (t.size() > 1 && t[0] == 's' && tokens[0] == "qvg") {
            c.options.stages = number(name, t, 1);
        } else if (t.size() > 1 && t[0] == 'c' && tokens[0] == "qvg") {
            c.options.centroids = number(name, t, 1);
        } else if (t.size() > 1 && t[0] == 'i' && tokens[0] == "qvg") {
            c.options.iterations = number(name, t, 1);
        } else if (t == "asym") {
            c.options.asymmetric = true;
        } else if (t == "kch" && (tokens[0] == "qvg" || tokens[0] == "rtn")) {
            c.options.channel_keys = true;
        } else {
            core::fail("cache '{}': unexpected '{}' ({})", name, t, kGrammar);
        }
    }
    return c;
}

}  // namespace qvg::cli
