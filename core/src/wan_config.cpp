#include "qvg/core/wan_config.h"

#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "qvg/core/error.h"

namespace qvg::core {
namespace {

using Weights = std::map<std::string, at::Tensor>;

std::optional<WanConfig> preset_for_dim(int64_t dim) {
    for (const WanConfig& preset :
         {WanConfig::wan_1_3b(), WanConfig::wan_5b(), WanConfig::tiny()}) {
        if (preset.dim == dim) return preset;
    }
    return std::nullopt;
}

const at::Tensor& require(const Weights& weights, const std::string& name, int64_t rank) {
    auto it = weights.find(name);
    if (it == weights.end()) {
        fail("cannot infer the Wan config: tensor '{}' is missing", name);
    }
    if (it->second.dim() != rank) {
        fail("cannot infer the Wan config: '{}' should have {} dimensions, found shape {}", name,
             rank, it->second.sizes());
    }
    return it->second;
}

template <typename T>
T json_value(const nlohmann::json& j, const char* key) {
    try {
        return j.at(key).get<T>();
    } catch (const nlohmann::json::exception& e) {
        fail("Wan config: key '{}' has the wrong type ({})", key, e.what());
    }
}

}  // namespace

// The member defaults are the 1.3B model.
WanConfig WanConfig::wan_1_3b() { return {}; }

WanConfig WanConfig::wan_5b() {
    return {.dim = 3072, .ffn_dim = 14336, .num_heads = 24, .in_dim = 48, .out_dim = 48};
}

WanConfig WanConfig::tiny() {
    return {
        .dim = 64, .ffn_dim = 128, .num_heads = 2, .num_layers = 2, .text_len = 16, .text_dim = 32};
}

void WanConfig::validate() const {
    QVG_CHECK(dim > 0 && ffn_dim > 0 && num_heads > 0 && num_layers > 0 && in_dim > 0 &&
                  out_dim > 0 && text_len > 0 && text_dim > 0 && freq_dim > 0,
              "Wan config: all sizes must be positive (dim {}, ffn_dim {}, num_heads {}, "
              "num_layers {}, in_dim {}, out_dim {}, text_len {}, text_dim {}, freq_dim {})",
              dim, ffn_dim, num_heads, num_layers, in_dim, out_dim, text_len, text_dim, freq_dim);
    QVG_CHECK(dim % num_heads == 0, "Wan config: dim {} is not divisible by num_heads {}", dim,
              num_heads);
    QVG_CHECK(head_dim() % 2 == 0 && head_dim() >= 6,
              "Wan config: head size {} must be even and at least 6 for the 3D RoPE", head_dim());
    QVG_CHECK(freq_dim % 2 == 0, "Wan config: freq_dim {} must be even", freq_dim);
    QVG_CHECK(eps > 0, "Wan config: eps must be positive, found {}", eps);
    for (int64_t p : patch_size) {
        QVG_CHECK(p > 0, "Wan config: patch_size must be positive, found {}", patch_size);
    }
}

WanConfig WanConfig::from_weights(const Weights& weights) {
    WanConfig c;
    const at::Tensor& patch = require(weights, "patch_embedding.weight", 5);  // [dim, in, t, h, w]
    c.dim = patch.size(0);
    c.in_dim = patch.size(1);
    c.patch_size = {patch.size(2), patch.size(3), patch.size(4)};
    c.text_dim = require(weights, "text_embedding.0.weight", 2).size(1);
    c.freq_dim = require(weights, "time_embedding.0.weight", 2).size(1);
    c.ffn_dim = require(weights, "blocks.0.ffn.0.weight", 2).size(0);
    const int64_t head_out = require(weights, "head.head.weight", 2).size(0);
    QVG_CHECK(head_out % c.patch_volume() == 0,
              "cannot infer the Wan config: head.head.weight has {} outputs, not a multiple of "
              "the patch volume {}",
              head_out, c.patch_volume());
    c.out_dim = head_out / c.patch_volume();

    const std::regex block_key(R"(blocks\.(\d+)\.modulation)");
    int64_t layers = 0;
    for (const auto& [name, tensor] : weights) {
        std::smatch m;
        if (std::regex_match(name, m, block_key)) {
            layers = std::max<int64_t>(layers, std::stoll(m[1].str()) + 1);
        }
    }
    QVG_CHECK(layers > 0, "cannot infer the Wan config: no blocks.N.modulation tensors");
    c.num_layers = layers;
    c.qk_norm = weights.count("blocks.0.self_attn.norm_q.weight") > 0;
    c.cross_attn_norm = weights.count("blocks.0.norm3.weight") > 0;

    if (auto preset = preset_for_dim(c.dim)) {
        c.num_heads = preset->num_heads;
        c.text_len = preset->text_len;
        c.eps = preset->eps;
    } else {
        // Every released Wan model uses 128-channel heads.
        QVG_CHECK(c.dim % 128 == 0,
                  "cannot infer the Wan config: dim {} matches no preset and is not a multiple of "
                  "the usual head size 128; give num_heads in a config.json",
                  c.dim);
        c.num_heads = c.dim / 128;
        c.text_len = 512;
        c.eps = 1e-6;
    }
    c.validate();
    return c;
}

WanConfig WanConfig::from_json(std::string_view json_text, const Weights* weights) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json_text);
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(fmt::format("Wan config: malformed JSON ({})", e.what()));
    }
    QVG_CHECK(j.is_object(), "Wan config: expected a JSON object, found {}", j.type_name());
    if (j.contains("model_type")) {
        const auto type = json_value<std::string>(j, "model_type");
        QVG_CHECK(type == "t2v" || type == "ti2v",
                  "Wan config: model_type '{}' is not supported (expected t2v or ti2v)", type);
    }

    std::optional<WanConfig> base;
    if (weights != nullptr) {
        base = from_weights(*weights);
    } else if (j.contains("dim")) {
        base = preset_for_dim(json_value<int64_t>(j, "dim"));
    }

    WanConfig c = base.value_or(WanConfig{});
    std::vector<std::string> missing;
    auto take_int = [&](const char* key, int64_t& field) {
        if (j.contains(key)) {
            field = json_value<int64_t>(j, key);
        } else if (!base) {
            missing.emplace_back(key);
        }
    };
    take_int("dim", c.dim);
    take_int("ffn_dim", c.ffn_dim);
    take_int("num_heads", c.num_heads);
    take_int("num_layers", c.num_layers);
    take_int("in_dim", c.in_dim);
    take_int("out_dim", c.out_dim);
    take_int("text_len", c.text_len);
    take_int("text_dim", c.text_dim);
    take_int("freq_dim", c.freq_dim);
    if (j.contains("eps")) {
        c.eps = json_value<double>(j, "eps");
    } else if (!base) {
        missing.emplace_back("eps");
    }
    if (j.contains("patch_size")) {
        const auto p = json_value<std::vector<int64_t>>(j, "patch_size");
        QVG_CHECK(p.size() == 3, "Wan config: patch_size needs 3 entries (t, h, w), found {}", p);
        c.patch_size = {p[0], p[1], p[2]};
    } else if (!base) {
        missing.emplace_back("patch_size");
    }
    if (j.contains("qk_norm")) c.qk_norm = json_value<bool>(j, "qk_norm");
    if (j.contains("cross_attn_norm")) c.cross_attn_norm = json_value<bool>(j, "cross_attn_norm");
    QVG_CHECK(missing.empty(),
              "Wan config: keys {} are missing and neither weights nor a preset of the same dim "
              "can fill them",
              missing);
    c.validate();
    return c;
}

WanConfig WanConfig::from_json_file(const std::filesystem::path& path, const Weights* weights) {
    std::ifstream in(path);
    QVG_CHECK(in.good(), "cannot open Wan config '{}'", path.string());
    std::stringstream text;
    text << in.rdbuf();
    try {
        return from_json(text.str(), weights);
    } catch (const FormatError& e) {
        throw FormatError(fmt::format("{}: {}", path.string(), e.what()));
    } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", path.string(), e.what()));
    }
}

}  // namespace qvg::core
