#include "model_loader.h"

#include "latent_preview.h"

#include <qvg/core/device.h>
#include <qvg/core/safetensors.h>
#include <qvg/core/weights.h>
#include <qvg/core/world_model_session.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <stdexcept>

namespace qvg::app {
namespace {

// Wan2.1 at 480 x 832 (Self-Forcing's resolution).
constexpr std::int64_t kCheckpointLatentRows = 60;
constexpr std::int64_t kCheckpointLatentCols = 104;

core::WanConfig test_config() {
    core::WanConfig c = core::WanConfig::tiny();
    c.dim = 128;
    c.ffn_dim = 256;
    c.num_heads = 2;
    c.num_layers = 4;
    c.validate();
    return c;
}

// Matrices N(0, 1/fan_in) so activations keep their scale, norms 1, modulation N(0, 0.1^2),
// biases N(0, 0.02^2): a DiT that runs like a trained one, without knowing anything.
core::TensorMap random_weights(const core::WanConfig& config, std::uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    core::TensorMap w;
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    for (const auto& e : core::WanDiT::expected_tensors(config)) {
        at::Tensor t;
        if (e.name.find("modulation") != std::string::npos) {
            t = at::randn(e.shape, gen, opts) * 0.1;
        } else if (e.shape.size() >= 2) {
            std::int64_t fan_in = 1;
            for (std::size_t i = 1; i < e.shape.size(); ++i) fan_in *= e.shape[i];
            t = at::randn(e.shape, gen, opts) / std::sqrt(static_cast<double>(fan_in));
        } else if (e.name.find("norm") != std::string::npos) {
            t = at::ones(e.shape, opts);
        } else {
            t = at::randn(e.shape, gen, opts) * 0.02;
        }
        w[e.name] = t;
    }
    return w;
}

at::Tensor pick_text_tensor(const core::TensorMap& tensors, const std::filesystem::path& path) {
    if (tensors.empty()) {
        throw std::runtime_error("text embedding " + path.string() + " holds no tensors");
    }
    if (tensors.size() == 1) return tensors.begin()->second;
    for (const char* name : {"context", "prompt_embeds", "text_embedding", "embedding"}) {
        auto it = tensors.find(name);
        if (it != tensors.end()) return it->second;
    }
    std::string names;
    for (const auto& [name, t] : tensors) names += (names.empty() ? "" : ", ") + name;
    throw std::runtime_error("text embedding " + path.string() +
                             " holds several tensors and none is named context, prompt_embeds, "
                             "text_embedding or embedding (found " +
                             names + ")");
}

// A metadata value as an integer, or `fallback` when the key is absent.
std::int64_t metadata_int(const std::map<std::string, std::string>& meta, const std::string& key,
                          std::int64_t fallback, const std::filesystem::path& path) {
    const auto it = meta.find(key);
    if (it == meta.end()) return fallback;
    try {
        std::size_t used = 0;
        const long long v = std::stoll(it->second, &used);
        if (used == it->second.size()) return v;
    } catch (const std::exception&) {
    }
    throw std::runtime_error("world model " + path.string() + ": metadata " + key + " = '" +
                             it->second + "' is not an integer");
}

std::shared_ptr<const LoadedModel> load_world_model(const ModelPaths& paths,
                                                    const LoadProgress& progress) {
    const auto report = [&](int step, const std::string& what) {
        if (progress) progress(step, 2, what);
    };
    auto m = std::make_shared<LoadedModel>();
    m->device = core::resolve_device(paths.device);
    report(0, "reading the world model " + paths.model.filename().string());
    const auto file = core::SafetensorsFile::open(paths.model);
    m->world_seed = static_cast<std::uint64_t>(
        metadata_int(file->metadata(), "qvg.world_seed", 1, paths.model));
    m->world_map_size =
        static_cast<int>(metadata_int(file->metadata(), "qvg.map_size", 1024, paths.model));
    m->trained_clip_latents =
        static_cast<int>(metadata_int(file->metadata(), "qvg.clip_latents", 0, paths.model));
    try {
        m->world_model =
            std::make_unique<core::WorldModel>(core::WorldModel::load(paths.model, m->device));
    } catch (const std::exception& e) {
        throw std::runtime_error("world model " + paths.model.string() + ": " + e.what());
    }
    const core::WorldModelConfig& c = m->world_model->config();
    if (c.image_size < 8 || c.image_size > 1024) {
        throw std::runtime_error("world model " + paths.model.string() + ": frames of " +
                                 std::to_string(c.image_size) +
                                 " pixels cannot be shown (8 to 1024)");
    }
    m->frame_width = static_cast<int>(c.image_size);
    m->frame_height = static_cast<int>(c.image_size);
    m->geometry = {1, c.latent_size(), c.latent_size()};
    m->label = "world model " + paths.model.filename().string();
    m->decoder_label = "the world model's decoder (" + std::to_string(c.image_size) + "x" +
                       std::to_string(c.image_size) + " RGB)";
    report(2, "ready");
    return m;
}

}  // namespace

const core::WanConfig& dit_config(const LoadedModel& model) {
    return model.world_model ? model.world_model->dit().config() : model.dit->config();
}

core::CacheShape cache_shape(const LoadedModel& model) {
    if (model.world_model) return core::world_cache_shape(*model.world_model);
    const core::WanConfig& mc = model.dit->config();
    const core::LatentGeometry& g = model.geometry;
    return {mc.num_layers, g.batch, mc.num_heads, mc.head_dim(),
            (g.height / mc.patch_size[1]) * (g.width / mc.patch_size[2])};
}

bool is_world_model_file(const std::filesystem::path& path) {
    try {
        return core::SafetensorsFile::open(path)->metadata().count(core::kWorldModelMetadataKey) >
               0;
    } catch (const std::exception&) {
        return false;  // not a safetensors file (a .pt checkpoint, a directory, ...)
    }
}

std::shared_ptr<const LoadedModel> make_test_model(std::uint64_t seed, const std::string& device) {
    c10::InferenceMode guard;
    auto m = std::make_shared<LoadedModel>();
    m->device = core::resolve_device(device);
    const core::WanConfig config = test_config();
    m->dit =
        std::make_unique<core::WanDiT>(config, random_weights(config, seed), m->device, at::kFloat);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x7e57ull);
    const at::Tensor text = at::randn({1, config.text_len, config.text_dim}, gen, at::kFloat);
    m->text = m->dit->encode_text(text.to(m->device));
    m->geometry = {1, 10, 16};
    m->frame_width = static_cast<int>(m->geometry.width * kPreviewScale);
    m->frame_height = static_cast<int>(m->geometry.height * kPreviewScale);
    m->random_weights = true;
    m->label = kTestModelLabel;
    m->decoder_label = kPreviewDecoderLabel;
    return m;
}

std::shared_ptr<const LoadedModel> load_model(const ModelPaths& paths,
                                              const LoadProgress& progress) {
    c10::InferenceMode guard;
    const int steps = paths.vae.empty() ? 3 : 4;
    const auto report = [&](int step, const std::string& what) {
        if (progress) progress(step, steps, what);
    };
    if (paths.model.empty()) throw std::runtime_error("no model file given");
    if (!std::filesystem::exists(paths.model)) {
        throw std::runtime_error("model " + paths.model.string() + " does not exist");
    }
    if (is_world_model_file(paths.model)) return load_world_model(paths, progress);
    if (paths.text_embedding.empty()) {
        throw std::runtime_error(
            "model " + paths.model.string() +
            " is not a world model (no qvg.world_model metadata); as a Self-Forcing checkpoint "
            "it needs a text embedding (File > Open Text Embedding, or --text-embedding): a "
            "safetensors or .pt file with one [L, text_dim] tensor");
    }
    if (!std::filesystem::exists(paths.text_embedding)) {
        throw std::runtime_error("text embedding " + paths.text_embedding.string() +
                                 " does not exist");
    }
    auto m = std::make_shared<LoadedModel>();
    m->device = core::resolve_device(paths.device);
    const at::ScalarType dtype = m->device.is_cuda() ? at::kBFloat16 : at::kFloat;

    report(0, "reading " + paths.model.filename().string());
    const core::TensorMap weights = core::load_weights(paths.model);
    const core::WanConfig config = core::WanConfig::from_weights(weights);
    report(1, "building the Wan DiT (" + std::to_string(config.num_layers) + " layers, dim " +
                  std::to_string(config.dim) + ")");
    m->dit = std::make_unique<core::WanDiT>(config, weights, m->device, dtype);

    report(2, "reading " + paths.text_embedding.filename().string());
    at::Tensor text =
        pick_text_tensor(core::load_weights(paths.text_embedding), paths.text_embedding);
    if (text.dim() == 2) text = text.unsqueeze(0);
    if (text.dim() != 3 || text.size(0) != 1 || text.size(2) != config.text_dim) {
        std::string shape;
        for (auto s : text.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(s);
        throw std::runtime_error("text embedding " + paths.text_embedding.string() +
                                 " should be [L, " + std::to_string(config.text_dim) +
                                 "] for this model, found [" + shape + "]");
    }
    m->text = m->dit->encode_text(text.to(m->device, dtype));

    if (!paths.vae.empty()) {
        report(3, "reading the VAE " + paths.vae.filename().string());
        if (!std::filesystem::exists(paths.vae)) {
            throw std::runtime_error("VAE " + paths.vae.string() + " does not exist");
        }
        m->vae = core::WanVaeDecoder::load(core::load_weights(paths.vae),
                                           core::WanVaeConfig::wan21(), m->device, dtype);
        m->decoder_label = "Wan2.1 VAE decoder (" + paths.vae.filename().string() + ")";
    } else {
        m->decoder_label = kPreviewDecoderLabel;
    }
    report(steps, "ready");
    m->geometry = {1, kCheckpointLatentRows, kCheckpointLatentCols};
    const std::int64_t scale = m->vae ? m->vae->config().spatial_factor() : kPreviewScale;
    m->frame_width = static_cast<int>(m->geometry.width * scale);
    m->frame_height = static_cast<int>(m->geometry.height * scale);
    m->label = "Self-Forcing " + paths.model.filename().string();
    return m;
}

}  // namespace qvg::app
