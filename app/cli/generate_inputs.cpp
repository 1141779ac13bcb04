#include "generate_inputs.h"

#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"

namespace qvg::cli {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& path) {
    std::ifstream in(path);
    QVG_CHECK(in.good(), "cannot read {}", path.string());
    std::stringstream text;
    text << in.rdbuf();
    try {
        return nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::exception& e) {
        core::fail("{} is not valid JSON: {}", path.string(), e.what());
    }
}

std::string shape_of(const at::Tensor& t) {
    return fmt::format("[{}]", fmt::join(t.sizes(), ", "));
}

}  // namespace

ModelFiles load_model_files(const fs::path& path) {
    std::error_code ec;
    QVG_CHECK(fs::exists(path, ec),
              "model not found: {} (expected a directory with config.json and weights, or a "
              "weights file)",
              path.string());
    ModelFiles m;
    const fs::path config_path = path / "config.json";
    if (fs::is_directory(path, ec) && fs::exists(config_path, ec)) {
        const nlohmann::json j = read_json(config_path);
        QVG_CHECK(j.is_object(), "{}: expected a JSON object", config_path.string());
        // The fixtures keep Wan's keys under "model_config" next to their own metadata.
        const nlohmann::json& model_json = j.contains("model_config") ? j["model_config"] : j;
        QVG_CHECK(model_json.is_object(), "{}: \"model_config\" must be an object",
                  config_path.string());
        fs::path weights_path = path;
        if (j.contains("weights") && j["weights"].is_object() && j["weights"].contains("file")) {
            const auto& file = j["weights"]["file"];
            QVG_CHECK(file.is_string(), "{}: \"weights\".\"file\" must be a file name",
                      config_path.string());
            weights_path = path / file.get<std::string>();
            QVG_CHECK(fs::exists(weights_path, ec),
                      "{} names weights file {}, which does not exist", config_path.string(),
                      weights_path.string());
        }
        m.weights = core::load_weights(weights_path);
        m.weights_path = weights_path.string();
        try {
            m.config = core::WanConfig::from_json(model_json.dump(), &m.weights);
        } catch (const core::Error& e) {
            core::fail("{}: {}", config_path.string(), e.what());
        }
        m.config_source = "config.json";
    } else {
        m.weights = core::load_weights(path);
        m.weights_path = path.string();
        try {
            m.config = core::WanConfig::from_weights(m.weights);
        } catch (const core::Error& e) {
            core::fail("{}: {}", path.string(), e.what());
        }
        m.config_source = "weights";
    }
    m.config.validate();
    return m;
}

at::Tensor load_text_embedding(const fs::path& path, const core::WanConfig& config) {
    const auto file = core::SafetensorsFile::open(path);
    std::string name;
    if (file->contains("text_embeds")) {
        name = "text_embeds";
    } else {
        QVG_CHECK(file->tensors().size() == 1,
                  "{}: expected the text embedding as tensor 'text_embeds' or as the file's only "
                  "tensor, found {} tensors and none named 'text_embeds'",
                  path.string(), file->tensors().size());
        name = file->tensors().front().name;
    }
    at::Tensor t = file->tensor(name);
    if (t.dim() == 2) t = t.unsqueeze(0);
    QVG_CHECK(t.dim() == 3 && t.size(0) == 1,
              "{}: text embedding '{}' must be [L, D] or [1, L, D], found {}", path.string(), name,
              shape_of(file->tensor(name)));
    QVG_CHECK(at::isFloatingType(t.scalar_type()),
              "{}: text embedding '{}' must be floating point, found {}", path.string(), name,
              c10::toString(t.scalar_type()));
    QVG_CHECK(t.size(2) == config.text_dim,
              "{}: text embedding '{}' has dimension {} ({}), the model expects text_dim {}",
              path.string(), name, t.size(2), shape_of(t), config.text_dim);
    QVG_CHECK(t.size(1) >= 1 && t.size(1) <= config.text_len,
              "{}: text embedding '{}' has {} rows, the model takes 1 to {} (text_len)",
              path.string(), name, t.size(1), config.text_len);
    QVG_CHECK(at::isfinite(t).all().item<bool>(), "{}: text embedding '{}' holds NaN or Inf",
              path.string(), name);
    return t;
}

std::map<std::string, at::Tensor> load_replayed_noise(const fs::path& path, int64_t frames,
                                                      int64_t channels, int64_t height,
                                                      int64_t width, int64_t frames_per_block,
                                                      int64_t renoise_steps) {
    const auto file = core::SafetensorsFile::open(path);
    std::map<std::string, at::Tensor> tensors;
    for (const auto& info : file->tensors()) {
        if (info.name == "noise" || info.name.rfind("renoise_", 0) == 0) {
            tensors[info.name] = file->tensor(info.name);
        }
    }
    const auto it = tensors.find("noise");
    QVG_CHECK(it != tensors.end(), "{}: no tensor 'noise' (the initial noise [1, F, C, H, W])",
              path.string());
    const at::Tensor& noise = it->second;
    QVG_CHECK(noise.dim() == 5 && noise.size(0) == 1 && noise.size(1) >= frames &&
                  noise.size(2) == channels && noise.size(3) == height && noise.size(4) == width,
              "{}: 'noise' is {}, expected [1, >= {}, {}, {}, {}] for {} latent frames of {}x{}",
              path.string(), shape_of(noise), frames, channels, height, width, frames, height,
              width);
    for (int64_t b = 0; b < frames / frames_per_block; ++b) {
        for (int64_t j = 0; j < renoise_steps; ++j) {
            const std::string name = fmt::format("renoise_b{}_s{}", b, j);
            QVG_CHECK(tensors.count(name) == 1,
                      "{}: no tensor '{}' (the noise mixed in after step {} of block {})",
                      path.string(), name, j, b);
        }
    }
    return tensors;
}

core::WanVaeDecoder load_vae(const fs::path& path, int64_t latent_channels, at::Device device,
                             at::ScalarType dtype) {
    std::error_code ec;
    QVG_CHECK(fs::exists(path, ec), "VAE not found: {}", path.string());
    const core::TensorMap weights = core::load_weights(path);
    const auto it = weights.find("decoder.conv1.weight");
    QVG_CHECK(it != weights.end(),
              "{}: not a Wan2.1 VAE (no tensor decoder.conv1.weight among its {} tensors)",
              path.string(), weights.size());
    const at::Tensor& conv_in = it->second;  // [base * dim_mult.back(), z, 3, 3, 3]
    core::WanVaeConfig config = core::WanVaeConfig::wan21();
    const int64_t top_mult = config.dim_mult.back();
    QVG_CHECK(conv_in.dim() == 5 && conv_in.size(0) % top_mult == 0,
              "{}: decoder.conv1.weight is {}, expected [{} * base, z, 3, 3, 3]", path.string(),
              shape_of(conv_in), top_mult);
    const int64_t base_dim = conv_in.size(0) / top_mult;
    if (base_dim == core::WanVaeConfig::tiny().base_dim) {
        config = core::WanVaeConfig::tiny();
    } else {
        config.base_dim = base_dim;
    }
    QVG_CHECK(conv_in.size(1) == latent_channels,
              "{}: the VAE decodes {} latent channels, the model generates {}", path.string(),
              conv_in.size(1), latent_channels);
    return core::WanVaeDecoder::load(weights, config, device, dtype);
}

}  // namespace qvg::cli
