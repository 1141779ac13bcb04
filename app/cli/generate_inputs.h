#pragma once
// The files `qvg generate` reads, turned into core objects with messages that name the file and
// what was wrong: the DiT (directory or single weights file), the text embedding, replayed noise
// and the Wan2.1 VAE decoder.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "qvg/core/wan_config.h"
#include "qvg/core/wan_vae.h"
#include "qvg/core/weights.h"

namespace qvg::cli {

struct ModelFiles {
    core::WanConfig config;
    core::TensorMap weights;    // CPU, names without wrapper prefixes
    std::string weights_path;   // the file or directory the weights came from
    std::string config_source;  // "config.json", "config.json + weights" or "weights"
};

// A directory: config.json (Wan keys at the top level or under "model_config"; keys it lacks come
// from the tensor shapes) and the weights it names under "weights": {"file": ...}, else whatever
// core::load_weights finds in the directory. A file: weights only, config from the shapes.
ModelFiles load_model_files(const std::filesystem::path& path);

// Tensor "text_embeds", or the file's only tensor: [L, D] or [1, L, D] -> [1, L, D], checked
// against the model's text_dim and text_len.
at::Tensor load_text_embedding(const std::filesystem::path& path, const core::WanConfig& config);

// "noise" [1, F >= frames, C, H, W] and every "renoise_b{b}_s{j}" of a reference run, with the
// noise's shape checked against the latents to be generated and the presence of the re-noise
// tensors of every block's first `renoise_steps` steps checked up front (their shapes are checked
// by core::ReplayedNoise when used).
std::map<std::string, at::Tensor> load_replayed_noise(const std::filesystem::path& path,
                                                      int64_t frames, int64_t channels,
                                                      int64_t height, int64_t width,
                                                      int64_t frames_per_block,
                                                      int64_t renoise_steps);

// A Wan2.1 VAE (decoder.* / conv2.* tensors, .pth or .safetensors). The config is wan21() with
// the base width read from decoder.conv1.weight, tiny() when that width is the tiny one; its
// latent channels must equal `latent_channels`.
core::WanVaeDecoder load_vae(const std::filesystem::path& path, int64_t latent_channels,
                             at::Device device, at::ScalarType dtype);

}  // namespace qvg::cli
