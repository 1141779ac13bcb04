#pragma once
// Hyper-parameters of a Wan DiT (Wan2.1 / Wan2.2 layout, as used by Self-Forcing and WorldPlay).
// A config comes from a preset, from a Wan-style config.json, or from the shapes of a
// checkpoint's tensors; JSON keys that are absent are filled from the tensor shapes, and what
// shapes cannot tell (heads, text length, eps) from the preset of the same width.

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include <ATen/core/Tensor.h>

namespace qvg::core {

struct WanConfig {
    int64_t dim = 1536;
    int64_t ffn_dim = 8960;
    int64_t num_heads = 12;
    int64_t num_layers = 30;
    int64_t in_dim = 16;   // latent channels in
    int64_t out_dim = 16;  // latent channels out
    int64_t text_len = 512;
    int64_t text_dim = 4096;
    int64_t freq_dim = 256;  // sinusoid size of the timestep embedding
    double eps = 1e-6;
    std::array<int64_t, 3> patch_size = {1, 2, 2};  // (t, h, w)
    bool qk_norm = true;
    bool cross_attn_norm = true;

    int64_t head_dim() const { return dim / num_heads; }
    int64_t patch_volume() const { return patch_size[0] * patch_size[1] * patch_size[2]; }

    // Wan2.1-T2V-1.3B (Self-Forcing).
    static WanConfig wan_1_3b();
    // Wan2.2-TI2V-5B (WorldPlay backbone).
    static WanConfig wan_5b();
    // The self_forcing_tiny fixture's model.
    static WanConfig tiny();

    // Parses a Wan-style config.json (keys dim, ffn_dim, num_heads, num_layers, in_dim, out_dim,
    // text_len, text_dim, freq_dim, eps, patch_size, qk_norm, cross_attn_norm; others ignored).
    // Missing keys come from `weights` (see from_weights) when given, else from the preset with
    // the same dim. Throws Error on malformed JSON, wrong types, or keys nothing can fill.
    static WanConfig from_json(std::string_view json_text,
                               const std::map<std::string, at::Tensor>* weights = nullptr);
    static WanConfig from_json_file(const std::filesystem::path& path,
                                    const std::map<std::string, at::Tensor>* weights = nullptr);

    // Everything the tensor shapes determine (dim, ffn_dim, num_layers, in/out channels, patch,
    // text_dim, freq_dim, qk_norm, cross_attn_norm); num_heads, text_len and eps from the preset
    // of the same dim, else Wan's head size 128, 512 text tokens, eps 1e-6.
    static WanConfig from_weights(const std::map<std::string, at::Tensor>& weights);

    // Throws Error when the numbers cannot describe a Wan DiT (dim not divisible by heads, odd
    // head size, non-positive sizes).
    void validate() const;

    bool operator==(const WanConfig&) const = default;
};

}  // namespace qvg::core
