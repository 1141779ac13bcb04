#include "qvg/core/world_model.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"

namespace qvg::core {
namespace {

using nlohmann::json;

constexpr const char* kDitPrefix = "dit.";

// Autoencoder tensors: name -> shape. Res blocks are pre-activation (x + conv(silu(conv(silu x)))).
std::map<std::string, std::vector<int64_t>> autoencoder_shapes(const WorldModelConfig& c) {
    const int64_t w = c.ae_width, w2 = 2 * c.ae_width, ch = c.latent_channels;
    const int64_t dw = c.decoder_channels(), dw2 = 2 * dw;
    const int64_t io = 3 * c.frames_per_latent;
    std::map<std::string, std::vector<int64_t>> s;
    auto conv = [&](const std::string& name, int64_t out, int64_t in, int64_t k) {
        s["ae." + name + ".weight"] = {out, in, k, k};
        s["ae." + name + ".bias"] = {out};
    };
    conv("enc.conv_in", w, io, 3);
    conv("enc.down1", w2, w, 4);
    conv("enc.res1.conv1", w2, w2, 3);
    conv("enc.res1.conv2", w2, w2, 3);
    conv("enc.down2", w2, w2, 4);
    conv("enc.res2.conv1", w2, w2, 3);
    conv("enc.res2.conv2", w2, w2, 3);
    conv("enc.conv_out", ch, w2, 3);
    conv("dec.conv_in", dw2, ch, 3);
    conv("dec.res1.conv1", dw2, dw2, 3);
    conv("dec.res1.conv2", dw2, dw2, 3);
    conv("dec.up1", dw2, dw2, 3);
    conv("dec.res2.conv1", dw2, dw2, 3);
    conv("dec.res2.conv2", dw2, dw2, 3);
    conv("dec.up2", dw, dw2, 3);
    conv("dec.conv_out", io, dw, 3);
    return s;
}

at::Tensor sinusoid(const at::Tensor& positions, const at::Tensor& freqs) {
    // As WanDiT::time_embedding: float64 angles, cosine half first.
    at::Tensor arg = at::outer(positions.to(at::kDouble).flatten(), freqs);
    return at::cat({at::cos(arg), at::sin(arg)}, 1).to(at::kFloat);
}

at::Tensor conv(const at::Tensor& x, const TensorMap& w, const std::string& name, int64_t stride,
                int64_t pad) {
    return at::conv2d(x, w.at("ae." + name + ".weight"), w.at("ae." + name + ".bias"),
                      {stride, stride}, {pad, pad});
}

at::Tensor res_block(const at::Tensor& x, const TensorMap& w, const std::string& name) {
    return x +
           conv(at::silu(conv(at::silu(x), w, name + ".conv1", 1, 1)), w, name + ".conv2", 1, 1);
}

at::Tensor upsample2(const at::Tensor& x) {
    return at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
}

at::Tensor randn(at::IntArrayRef shape, at::Generator& gen) {
    return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor rand(at::IntArrayRef shape, at::Generator& gen) {
    return at::rand(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

// ---- config --------------------------------------------------------------------------------

WorldModelConfig WorldModelConfig::small() {
    WorldModelConfig c;
    c.dit = WanConfig{.dim = 256,
                      .ffn_dim = 1024,
                      .num_heads = 4,
                      .num_layers = 6,
                      .in_dim = 16,
                      .out_dim = 16,
                      .text_len = 1,
                      .text_dim = 16};
    return c;
}

WorldModelConfig WorldModelConfig::tiny() {
    WorldModelConfig c;
    c.image_size = 16;
    c.frames_per_latent = 2;
    c.latent_channels = 4;
    c.ae_width = 8;
    c.dit = WanConfig{.dim = 32,
                      .ffn_dim = 64,
                      .num_heads = 2,
                      .num_layers = 2,
                      .in_dim = 4,
                      .out_dim = 4,
                      .text_len = 1,
                      .text_dim = 8,
                      .freq_dim = 32};
    return c;
}

void WorldModelConfig::validate() const {
    dit.validate();
    QVG_CHECK(image_size >= 8 && image_size % 4 == 0,
              "world model: image size must be a multiple of 4 and >= 8, found {}", image_size);
    QVG_CHECK(frames_per_latent >= 1 && latent_channels >= 1 && ae_width >= 1,
              "world model: frames per latent ({}), latent channels ({}) and autoencoder width "
              "({}) must be positive",
              frames_per_latent, latent_channels, ae_width);
    QVG_CHECK(decoder_width >= 0, "world model: decoder width {} must not be negative",
              decoder_width);
    QVG_CHECK(dit.in_dim == latent_channels && dit.out_dim == latent_channels,
              "world model: the DiT's in/out channels ({}, {}) must equal the latent channels {}",
              dit.in_dim, dit.out_dim, latent_channels);
    QVG_CHECK(dit.patch_size[0] == 1 && latent_size() % dit.patch_size[1] == 0 &&
                  latent_size() % dit.patch_size[2] == 0,
              "world model: patch {}x{}x{} does not tile the {}x{} latent", dit.patch_size[0],
              dit.patch_size[1], dit.patch_size[2], latent_size(), latent_size());
    QVG_CHECK(chunk_latents >= 1 && sample_steps >= 1,
              "world model: chunk latents ({}) and sample steps ({}) must be positive",
              chunk_latents, sample_steps);
    QVG_CHECK(shift > 0 && context_noise_max >= 0 && context_noise_max < 1,
              "world model: shift ({}) must be positive and context noise ({}) in [0, 1)", shift,
              context_noise_max);
}

std::string WorldModelConfig::to_json() const {
    json j;
    j["image_size"] = image_size;
    j["frames_per_latent"] = frames_per_latent;
    j["latent_channels"] = latent_channels;
    j["ae_width"] = ae_width;
    if (decoder_width > 0) j["decoder_width"] = decoder_width;  // older readers: same file shape
    j["chunk_latents"] = chunk_latents;
    j["sample_steps"] = sample_steps;
    j["shift"] = shift;
    j["context_noise_max"] = context_noise_max;
    json d;
    d["dim"] = dit.dim;
    d["ffn_dim"] = dit.ffn_dim;
    d["num_heads"] = dit.num_heads;
    d["num_layers"] = dit.num_layers;
    d["in_dim"] = dit.in_dim;
    d["out_dim"] = dit.out_dim;
    d["text_len"] = dit.text_len;
    d["text_dim"] = dit.text_dim;
    d["freq_dim"] = dit.freq_dim;
    d["eps"] = dit.eps;
    d["patch_size"] = dit.patch_size;
    d["qk_norm"] = dit.qk_norm;
    d["cross_attn_norm"] = dit.cross_attn_norm;
    j["dit"] = d;
    return j.dump();
}

WorldModelConfig WorldModelConfig::from_json(const std::string& text) {
    WorldModelConfig c;
    try {
        const json j = json::parse(text);
        c.image_size = j.at("image_size").get<int64_t>();
        c.frames_per_latent = j.at("frames_per_latent").get<int64_t>();
        c.latent_channels = j.at("latent_channels").get<int64_t>();
        c.ae_width = j.at("ae_width").get<int64_t>();
        c.decoder_width = j.value("decoder_width", int64_t{0});  // absent: as the encoder
        c.chunk_latents = j.at("chunk_latents").get<int64_t>();
        c.sample_steps = j.at("sample_steps").get<int64_t>();
        c.shift = j.at("shift").get<double>();
        c.context_noise_max = j.at("context_noise_max").get<double>();
        const json& d = j.at("dit");
        c.dit.dim = d.at("dim").get<int64_t>();
        c.dit.ffn_dim = d.at("ffn_dim").get<int64_t>();
        c.dit.num_heads = d.at("num_heads").get<int64_t>();
        c.dit.num_layers = d.at("num_layers").get<int64_t>();
        c.dit.in_dim = d.at("in_dim").get<int64_t>();
        c.dit.out_dim = d.at("out_dim").get<int64_t>();
        c.dit.text_len = d.at("text_len").get<int64_t>();
        c.dit.text_dim = d.at("text_dim").get<int64_t>();
        c.dit.freq_dim = d.at("freq_dim").get<int64_t>();
        c.dit.eps = d.at("eps").get<double>();
        c.dit.patch_size = d.at("patch_size").get<std::array<int64_t, 3>>();
        c.dit.qk_norm = d.at("qk_norm").get<bool>();
        c.dit.cross_attn_norm = d.at("cross_attn_norm").get<bool>();
    } catch (const json::exception& e) {
        fail("world model config: {}", e.what());
    }
    c.validate();
    return c;
}

// ---- weights -------------------------------------------------------------------------------

std::vector<ExpectedTensor> world_model_tensors(const WorldModelConfig& c) {
    c.validate();
    std::vector<ExpectedTensor> out;
    for (auto& [name, shape] : autoencoder_shapes(c)) out.push_back({name, shape});
    const int64_t d = c.dit.dim;
    out.push_back({"action_embedding.0.weight", {d, c.dit.freq_dim}});
    out.push_back({"action_embedding.0.bias", {d}});
    out.push_back({"action_embedding.2.weight", {d, d}});
    out.push_back({"action_embedding.2.bias", {d}});
    out.push_back({"latent.mean", {c.latent_channels}});
    out.push_back({"latent.std", {c.latent_channels}});
    for (auto& e : WanDiT::expected_tensors(c.dit)) out.push_back({kDitPrefix + e.name, e.shape});
    return out;
}

TensorMap init_world_model_weights(const WorldModelConfig& c, uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    TensorMap w;
    const int64_t d = c.dit.dim;
    for (const ExpectedTensor& e : world_model_tensors(c)) {
        const std::string& n = e.name;
        auto ends_with = [&](const char* s) {
            const std::string suffix(s);
            return n.size() >= suffix.size() &&
                   n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
        };
        at::Tensor t;
        if (n == "latent.std" || (n.find("norm") != std::string::npos && ends_with(".weight"))) {
            t = at::ones(e.shape, f32);
        } else if (ends_with(".bias") || n == "latent.mean" || n == "dit.head.head.weight" ||
                   n == "action_embedding.2.weight") {
            t = at::zeros(e.shape, f32);
        } else if (ends_with("modulation")) {
            t = at::randn(e.shape, gen, f32) / std::sqrt(static_cast<double>(d));
        } else if (n.rfind("ae.", 0) == 0) {
            // He init; the second conv of a residual block starts small so blocks begin near
            // identity.
            const int64_t fan_in = e.shape[1] * e.shape[2] * e.shape[3];
            double std = std::sqrt(2.0 / static_cast<double>(fan_in));
            if (ends_with("conv2.weight")) std *= 0.1;
            t = at::randn(e.shape, gen, f32) * std;
        } else if (n == "dit.patch_embedding.weight") {
            const int64_t fan_in = e.shape[1] * e.shape[2] * e.shape[3] * e.shape[4];
            t = at::randn(e.shape, gen, f32) / std::sqrt(static_cast<double>(fan_in));
        } else {
            t = at::randn(e.shape, gen, f32) * 0.02;
        }
        w[n] = t;
    }
    return w;
}

namespace {

TensorMap dit_part(const TensorMap& weights) {
    TensorMap out;
    const std::string prefix = kDitPrefix;
    for (const auto& [name, t] : weights) {
        if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = t;
    }
    return out;
}

const TensorMap& checked(const WorldModelConfig& config, const TensorMap& weights) {
    check_weights(weights, world_model_tensors(config),
                  fmt::format("world model (DiT dim {}, {} layers, {} latent channels)",
                              config.dit.dim, config.dit.num_layers, config.latent_channels));
    return weights;
}

}  // namespace

WorldModel::WorldModel(const WorldModelConfig& config, const TensorMap& weights, at::Device device,
                       WanMode mode)
    : config_(config),
      device_(device),
      mode_(mode),
      dit_(config.dit, dit_part(checked(config, weights)), device, at::kFloat, mode) {
    device_ = dit_.device();
    const bool training = mode == WanMode::kTraining;
    c10::InferenceMode guard(!training);
    for (const auto& [name, t] : weights) {
        if (name.rfind(kDitPrefix, 0) == 0) continue;
        at::Tensor own = t.to(device_, at::kFloat).contiguous().clone();
        if (training && name.rfind("latent.", 0) != 0) own.requires_grad_(true);
        own_[name] = own;
    }
    const int64_t half = config.dit.freq_dim / 2;
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    sinusoid_freqs_ =
        at::pow(10000.0, at::arange(half, f64).div(static_cast<double>(half)).neg()).to(device_);
}

WorldModel WorldModel::load(const std::filesystem::path& path, at::Device device, WanMode mode) {
    auto file = SafetensorsFile::open(path);
    auto it = file->metadata().find(kWorldModelMetadataKey);
    if (it == file->metadata().end()) {
        throw FormatError(fmt::format("{}: not a world model (no '{}' metadata)", path.string(),
                                      kWorldModelMetadataKey));
    }
    const WorldModelConfig config = WorldModelConfig::from_json(it->second);
    TensorMap weights;
    for (const TensorInfo& info : file->tensors()) weights[info.name] = file->tensor(info.name);
    return WorldModel(config, weights, device, mode);
}

TensorMap WorldModel::weights() const {
    TensorMap out;
    for (const auto& [name, t] : own_) out[name] = t.detach().clone();
    for (auto& [name, t] : dit_.weights()) out[kDitPrefix + name] = t.to(at::kFloat);
    return out;
}

void WorldModel::save(const std::filesystem::path& path,
                      const std::map<std::string, std::string>& metadata) const {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (auto& [name, t] : weights()) tensors.emplace_back(name, t.cpu());
    std::map<std::string, std::string> meta = metadata;
    meta[kWorldModelMetadataKey] = config_.to_json();
    save_safetensors(path, tensors, meta);
}

std::vector<at::Tensor> WorldModel::autoencoder_parameters() const {
    std::vector<at::Tensor> out;
    for (const auto& [name, t] : own_) {
        if (name.rfind("ae.", 0) == 0) out.push_back(t);
    }
    return out;
}

std::vector<at::Tensor> WorldModel::decoder_parameters() const {
    std::vector<at::Tensor> out;
    for (const auto& [name, t] : own_) {
        if (name.rfind("ae.dec.", 0) == 0) out.push_back(t);
    }
    return out;
}

std::vector<at::Tensor> WorldModel::dit_parameters() const {
    std::vector<at::Tensor> out = dit_.parameters();
    for (const auto& [name, t] : own_) {
        if (name.rfind("action_embedding.", 0) == 0) out.push_back(t);
    }
    return out;
}

at::Tensor WorldModel::encode(const at::Tensor& video) const {
    const int64_t io = 3 * config_.frames_per_latent, s = config_.image_size;
    QVG_CHECK(video.defined() && video.dim() == 4 && video.size(1) == io && video.size(2) == s &&
                  video.size(3) == s,
              "world model: expected video [N, {}, {}, {}], found {}", io, s, s,
              video.defined() ? fmt::format("{}", video.sizes()) : "undefined");
    c10::InferenceMode guard(mode_ == WanMode::kInference);
    const TensorMap& w = own_;
    at::Tensor h = conv(video.to(device_, at::kFloat), w, "enc.conv_in", 1, 1);
    h = conv(at::silu(h), w, "enc.down1", 2, 1);
    h = res_block(h, w, "enc.res1");
    h = conv(at::silu(h), w, "enc.down2", 2, 1);
    h = res_block(h, w, "enc.res2");
    return conv(at::silu(h), w, "enc.conv_out", 1, 1);
}

at::Tensor WorldModel::decode(const at::Tensor& latents) const {
    const int64_t ls = config_.latent_size();
    QVG_CHECK(latents.defined() && latents.dim() == 4 &&
                  latents.size(1) == config_.latent_channels && latents.size(2) == ls &&
                  latents.size(3) == ls,
              "world model: expected latents [N, {}, {}, {}], found {}", config_.latent_channels,
              ls, ls, latents.defined() ? fmt::format("{}", latents.sizes()) : "undefined");
    c10::InferenceMode guard(mode_ == WanMode::kInference);
    const TensorMap& w = own_;
    at::Tensor h = conv(latents.to(device_, at::kFloat), w, "dec.conv_in", 1, 1);
    h = res_block(h, w, "dec.res1");
    h = conv(upsample2(at::silu(h)), w, "dec.up1", 1, 1);
    h = res_block(h, w, "dec.res2");
    h = conv(upsample2(at::silu(h)), w, "dec.up2", 1, 1);
    return conv(at::silu(h), w, "dec.conv_out", 1, 1);
}

at::Tensor WorldModel::normalize(const at::Tensor& raw) const {
    const at::Tensor& mean = own_.at("latent.mean");
    const at::Tensor& std = own_.at("latent.std");
    return (raw - mean.view({-1, 1, 1})) / std.view({-1, 1, 1});
}

at::Tensor WorldModel::denormalize(const at::Tensor& normalised) const {
    const at::Tensor& mean = own_.at("latent.mean");
    const at::Tensor& std = own_.at("latent.std");
    return normalised * std.view({-1, 1, 1}) + mean.view({-1, 1, 1});
}

void WorldModel::set_latent_stats(const at::Tensor& mean, const at::Tensor& std) {
    const int64_t ch = config_.latent_channels;
    QVG_CHECK(mean.defined() && std.defined() && mean.dim() == 1 && mean.size(0) == ch &&
                  std.dim() == 1 && std.size(0) == ch,
              "world model: latent statistics must be [{}], found {} and {}", ch,
              mean.defined() ? fmt::format("{}", mean.sizes()) : "undefined",
              std.defined() ? fmt::format("{}", std.sizes()) : "undefined");
    QVG_CHECK(std.gt(0).all().item<bool>(), "world model: latent std must be positive");
    own_["latent.mean"] = mean.detach().to(device_, at::kFloat).clone();
    own_["latent.std"] = std.detach().to(device_, at::kFloat).clone();
}

at::Tensor WorldModel::action_embedding(const at::Tensor& labels) const {
    QVG_CHECK(labels.defined() && labels.dim() == 2,
              "world model: expected action labels [B, F], found {}",
              labels.defined() ? fmt::format("{}", labels.sizes()) : "undefined");
    c10::InferenceMode guard(mode_ == WanMode::kInference);
    at::Tensor s = sinusoid(labels.to(device_), sinusoid_freqs_);  // [B*F, freq_dim]
    at::Tensor e =
        at::linear(at::silu(at::linear(s, own_.at("action_embedding.0.weight"),
                                       own_.at("action_embedding.0.bias"))),
                   own_.at("action_embedding.2.weight"), own_.at("action_embedding.2.bias"));
    return e.view({labels.size(0), labels.size(1), config_.dit.dim});
}

TextContext WorldModel::text(int64_t batch) const {
    // Made on the device: a host tensor would be copied there with a wait on every call.
    return dit_.encode_text(at::zeros({batch, 1, config_.dit.text_dim},
                                      at::TensorOptions().dtype(at::kFloat).device(device_)));
}

ForwardExtras WorldModel::action_extras(const at::Tensor& x, const at::Tensor& labels) const {
    QVG_CHECK(labels.defined() && x.defined() && labels.dim() == 2 && x.dim() == 5 &&
                  labels.size(0) == x.size(0) && labels.size(1) == x.size(1),
              "world model: expected labels [B, F] for latents [B, F, C, h, w], found {} for {}",
              labels.defined() ? fmt::format("{}", labels.sizes()) : "undefined",
              x.defined() ? fmt::format("{}", x.sizes()) : "undefined");
    ForwardExtras extras;
    extras.frame_embedding = action_embedding(labels);
    return extras;
}

at::Tensor WorldModel::flow(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels,
                            const TextContext& text, History* history, int64_t first_frame,
                            CacheWrite mode, ForwardStats* stats) const {
    ForwardExtras extras = action_extras(x, labels);
    extras.stats = stats;
    return dit_.forward(x.to(device_), t.to(device_), text, history, first_frame, mode, extras);
}

at::Tensor WorldModel::flow(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels,
                            const TextContext& text, const FrameAttention& attention) const {
    const ForwardExtras extras = action_extras(x, labels);
    return dit_.forward_masked(x.to(device_), t.to(device_), text, attention, extras);
}

// ---- pixels --------------------------------------------------------------------------------

at::Tensor video_from_rgb8(const uint8_t* rgb, int64_t frames, int64_t height, int64_t width,
                           int64_t frames_per_latent) {
    QVG_CHECK(frames > 0 && frames_per_latent > 0 && frames % frames_per_latent == 0,
              "world model: {} frames do not make whole latents of {}", frames, frames_per_latent);
    const int64_t n = frames / frames_per_latent;
    at::Tensor bytes = at::from_blob(const_cast<uint8_t*>(rgb),
                                     {n, frames_per_latent, height, width, 3}, at::kByte);
    return bytes.permute({0, 1, 4, 2, 3})
        .reshape({n, 3 * frames_per_latent, height, width})
        .to(at::kFloat)
        .div(127.5)
        .sub(1.0);
}

std::vector<uint8_t> rgb8_from_video(const at::Tensor& video, int64_t frames_per_latent) {
    QVG_CHECK(video.defined() && video.dim() == 4 && video.size(1) == 3 * frames_per_latent,
              "world model: expected video [N, {}, H, W], found {}", 3 * frames_per_latent,
              video.defined() ? fmt::format("{}", video.sizes()) : "undefined");
    const int64_t n = video.size(0), h = video.size(2), w = video.size(3);
    at::Tensor bytes = video.detach()
                           .to(at::kCPU, at::kFloat)
                           .add(1.0)
                           .mul(127.5)
                           .round()
                           .clamp(0, 255)
                           .to(at::kByte)
                           .view({n, frames_per_latent, 3, h, w})
                           .permute({0, 1, 3, 4, 2})
                           .contiguous();
    const auto* p = bytes.data_ptr<uint8_t>();
    return std::vector<uint8_t>(p, p + bytes.numel());
}

at::Tensor shifted_sigma(const at::Tensor& u, double shift) {
    return u * shift / (1.0 + (shift - 1.0) * u);
}

// ---- losses --------------------------------------------------------------------------------

double AutoencoderLoss::psnr(double mse) { return 10.0 * std::log10(4.0 / std::max(mse, 1e-12)); }

AutoencoderLoss autoencoder_loss(const WorldModel& model, const at::Tensor& video,
                                 const at::Tensor& noise, AutoencoderPart part) {
    const at::Device device = model.device();
    at::Tensor target = video.to(device, at::kFloat);
    const bool decoder_only = part == AutoencoderPart::kDecoder;
    at::Tensor z;
    {
        at::AutoGradMode grad(!decoder_only && at::GradMode::is_enabled());
        z = model.encode(target);
    }
    QVG_CHECK(noise.defined() && noise.sizes() == z.sizes(),
              "autoencoder loss: expected noise {}, found {}", z.sizes(),
              noise.defined() ? fmt::format("{}", noise.sizes()) : "undefined");
    // Noise at a tenth of the latents' spread teaches the decoder to forgive small errors.
    at::Tensor recon = model.decode(z + noise.to(device, at::kFloat) * (0.1 * z.detach().std()));
    at::Tensor mse = at::mse_loss(recon, target);
    AutoencoderLoss out;
    out.loss = decoder_only ? mse : mse + 1e-4 * z.pow(2).mean();
    out.mse = mse.detach();
    return out;
}

AutoencoderLoss autoencoder_loss(const WorldModel& model, const at::Tensor& video,
                                 at::Generator& gen) {
    const WorldModelConfig& c = model.config();
    QVG_CHECK(video.defined() && video.dim() == 4,
              "world model: expected video [N, {}, {}, {}], found {}", 3 * c.frames_per_latent,
              c.image_size, c.image_size,
              video.defined() ? fmt::format("{}", video.sizes()) : "undefined");
    return autoencoder_loss(model, video, draw_autoencoder_noise(c, video.size(0), gen));
}

at::Tensor draw_autoencoder_noise(const WorldModelConfig& c, int64_t latents, at::Generator& gen) {
    return randn({latents, c.latent_channels, c.latent_size(), c.latent_size()}, gen);
}

void OwnHistory::validate() const {
    QVG_CHECK(share >= 0 && share <= 1 && sigma > 0 && sigma <= 1,
              "own history: the share ({}) must be in [0, 1] and its sigma ({}) in (0, 1]", share,
              sigma);
}

FlowMatchingNoise draw_flow_matching_noise(const WorldModelConfig& c, at::IntArrayRef shape,
                                           at::Generator& gen, const OwnHistory& own) {
    own.validate();
    QVG_CHECK(shape.size() == 5 && shape[0] >= 1 && shape[1] >= c.chunk_latents &&
                  shape[1] % c.chunk_latents == 0,
              "flow matching: expected latents [B, N, C, h, w] with N a positive multiple of {}, "
              "found {}",
              c.chunk_latents, shape);
    const int64_t batch = shape[0], n = shape[1], context = n - c.chunk_latents;
    FlowMatchingNoise out;
    out.sigma = shifted_sigma(rand({batch, n}, gen), c.shift);
    out.noise = randn(shape, gen);
    out.context_sigma = rand({batch, context}, gen) * c.context_noise_max;
    out.context_noise = randn({batch, context, shape[2], shape[3], shape[4]}, gen);
    if (own.share > 0) {
        out.own_history = (rand({batch}, gen) < own.share).to(at::kFloat);
        out.own_history_noise = randn({batch, context, shape[2], shape[3], shape[4]}, gen);
        out.own_history_sigma = own.sigma;
    }
    return out;
}

at::Tensor flow_matching_loss(const WorldModel& model, const at::Tensor& latents,
                              const at::Tensor& labels, const FlowMatchingNoise& noise) {
    const WorldModelConfig& c = model.config();
    QVG_CHECK(latents.defined() && latents.dim() == 5 && latents.size(2) == c.latent_channels &&
                  latents.size(1) >= c.chunk_latents && latents.size(1) % c.chunk_latents == 0,
              "flow matching: expected latents [B, N, {}, h, w] with N a positive multiple of {}, "
              "found {}",
              c.latent_channels, c.chunk_latents,
              latents.defined() ? fmt::format("{}", latents.sizes()) : "undefined");
    QVG_CHECK(labels.defined() && labels.dim() == 2 && labels.size(0) == latents.size(0) &&
                  labels.size(1) == latents.size(1),
              "flow matching: expected labels [{}, {}], found {}", latents.size(0), latents.size(1),
              labels.defined() ? fmt::format("{}", labels.sizes()) : "undefined");
    const int64_t batch = latents.size(0), n = latents.size(1), k = c.chunk_latents;
    const int64_t context = n - k;  // clean frames: every chunk but the last
    auto fits = [](const at::Tensor& t, at::IntArrayRef shape) {
        return t.defined() && t.sizes() == shape;
    };
    std::vector<int64_t> context_shape = latents.sizes().vec();
    context_shape[1] = context;
    QVG_CHECK(fits(noise.sigma, {batch, n}) && fits(noise.noise, latents.sizes()) &&
                  fits(noise.context_sigma, {batch, context}) &&
                  fits(noise.context_noise, context_shape),
              "flow matching: the noise does not fit latents {} (draw it with "
              "draw_flow_matching_noise)",
              latents.sizes());
    const at::Device device = model.device();
    auto on_device = [&](const at::Tensor& t) { return t.to(device, at::kFloat); };
    const at::Tensor z = on_device(latents);
    const at::Tensor sigma = on_device(noise.sigma), eps = on_device(noise.noise);
    const at::Tensor sc = on_device(noise.context_sigma);
    const at::Tensor lab = labels.to(device);

    auto per_frame = [](const at::Tensor& s) { return s.view({s.size(0), s.size(1), 1, 1, 1}); };
    const at::Tensor labels_all = at::cat({lab.narrow(1, 0, context), lab}, 1);
    const FrameAttention attention = teacher_forcing_attention(n / k, k, device);
    const at::Tensor context_noise = on_device(noise.context_noise);
    at::Tensor zc = z.narrow(1, 0, context);
    if (noise.own_history.defined() && context > k) {
        QVG_CHECK(fits(noise.own_history, {batch}) && fits(noise.own_history_noise, context_shape),
                  "flow matching: the own-history draws do not fit latents {}", latents.sizes());
        at::NoGradGuard no_grad;
        // The history each chunk would be given, predicted from the ground truth before it.
        const double sh = noise.own_history_sigma;
        const at::Tensor xh = (1 - sh) * zc + sh * on_device(noise.own_history_noise);
        const at::Tensor x_clean = (1 - per_frame(sc)) * zc + per_frame(sc) * context_noise;
        const at::Tensor sigma_h = at::full({batch, context}, sh, sc.options());
        const at::Tensor vh = model
                                  .flow(at::cat({x_clean, at::cat({xh, xh.narrow(1, 0, k)}, 1)}, 1),
                                        at::cat({sc, sigma_h, sigma_h.narrow(1, 0, k)}, 1) * 1000.0,
                                        labels_all, model.text(batch), attention)
                                  .narrow(1, context, context)
                                  .to(at::kFloat);
        const at::Tensor predicted = xh - sh * vh;
        const at::Tensor use = per_frame(on_device(noise.own_history).view({batch, 1}));
        const at::Tensor later =
            (1 - use) * zc.narrow(1, k, context - k) + use * predicted.narrow(1, k, context - k);
        zc = at::cat({zc.narrow(1, 0, k), later}, 1);
    }
    const at::Tensor x_noisy = (1 - per_frame(sigma)) * z + per_frame(sigma) * eps;
    const at::Tensor x_clean = (1 - per_frame(sc)) * zc + per_frame(sc) * context_noise;
    at::Tensor v = model.flow(at::cat({x_clean, x_noisy}, 1), at::cat({sc, sigma}, 1) * 1000.0,
                              labels_all, model.text(batch), attention);
    return at::mse_loss(v.narrow(1, context, n).to(at::kFloat), eps - z);
}

at::Tensor flow_matching_loss(const WorldModel& model, const at::Tensor& latents,
                              const at::Tensor& labels, at::Generator& gen) {
    QVG_CHECK(latents.defined(), "flow matching: the latents are undefined");
    return flow_matching_loss(model, latents, labels,
                              draw_flow_matching_noise(model.config(), latents.sizes(), gen));
}

}  // namespace qvg::core
