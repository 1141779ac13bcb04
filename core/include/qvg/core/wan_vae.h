#pragma once
// Wan2.1 VAE decoder (the causal 3D conv video VAE of Wan2.1 / Self-Forcing), decoder half only.
//
// Latents [B, F, z, H, W] decode to frames [B, 1 + 4(F-1), 3, 8H, 8W] for the real model. The
// decoder runs one latent frame at a time, as the reference does: every causal conv keeps the last
// two frames of its input (the feature cache), so a video decoded chunk by chunk through a
// WanVaeStream is identical to one decoded at once, and the working memory beyond the output is
// that of a single latent frame's activations (4 output frames), whatever the video length.
// Plain ATen ops, so CPU and CUDA alike; callers run it under c10::InferenceMode. A decoder is
// immutable after load(); decode() may run on several threads, a WanVaeStream on one at a time.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "qvg/core/weights.h"  // TensorMap

namespace qvg::core {

struct WanVaeConfig {
    int64_t base_dim = 96;                         // "dim": channels of the last decoder stage
    int64_t z_dim = 16;                            // latent channels
    std::vector<int64_t> dim_mult = {1, 2, 4, 4};  // encoder order, as upstream writes it
    int64_t num_res_blocks = 2;                    // the decoder uses num_res_blocks + 1 per stage
    // Decoder order: stage i upsamples in time (upsample3d) when true, else only in space.
    // One entry per stage but the last (dim_mult.size() - 1 entries).
    std::vector<bool> temporal_upsample = {true, true, false};
    std::vector<float> latent_mean;  // [z_dim] un-normalisation: z * std + mean
    std::vector<float> latent_std;   // [z_dim]

    // The released Wan2.1_VAE.pth (decoder 73.3M parameters).
    static WanVaeConfig wan21();
    // The golden fixture's tiny decoder (base 8, otherwise as wan21()).
    static WanVaeConfig tiny();

    // Channels entering each stage's residual blocks and leaving them, decoder order.
    std::vector<int64_t> stage_in_dims() const;
    std::vector<int64_t> stage_out_dims() const;
    int64_t spatial_factor() const;   // 8 for Wan2.1
    int64_t temporal_factor() const;  // 4 for Wan2.1: frames per latent frame after the first
    int64_t output_frames(int64_t latent_frames) const;  // 1 + temporal_factor() * (F - 1)

    // Throws Error when the fields are inconsistent (sizes, odd channel counts, zero std...).
    void validate() const;
};

// Weights, on the decoder's device and dtype. Keys are relative to the owning block's key.
struct WanVaeConv {     // CausalConv3d or Conv2d
    at::Tensor weight;  // ".weight" [out, in, kt, kh, kw] (3D) or [out, in, kh, kw] (2D)
    at::Tensor bias;    // ".bias" [out]
};

struct WanVaeNorm {    // RMS_norm
    at::Tensor gamma;  // ".gamma" [C, 1, 1, 1] on videos, [C, 1, 1] on images
    at::Tensor bias;   // ".bias" same shape as gamma; undefined (no bias) in Wan2.1
};

struct WanVaeResBlock {   // "decoder.middle.{0,2}", "decoder.upsamples.N"
    WanVaeNorm norm1;     // "residual.0" [in, 1, 1, 1]
    WanVaeConv conv1;     // "residual.2" [out, in, 3, 3, 3]
    WanVaeNorm norm2;     // "residual.3" [out, 1, 1, 1]
    WanVaeConv conv2;     // "residual.6" [out, out, 3, 3, 3]
    WanVaeConv shortcut;  // "shortcut" [out, in, 1, 1, 1]; undefined (identity) when in == out
};

struct WanVaeAttention {  // "decoder.middle.1": single-head attention over each frame's pixels
    WanVaeNorm norm;      // "norm" [C, 1, 1]
    WanVaeConv to_qkv;    // "to_qkv" [3C, C, 1, 1]
    WanVaeConv proj;      // "proj" [C, C, 1, 1]
};

struct WanVaeUpsample {    // "decoder.upsamples.N" (Resample upsample2d / upsample3d)
    WanVaeConv conv;       // "resample.1" [C/2, C, 3, 3], after a nearest x2 upsample
    WanVaeConv time_conv;  // "time_conv" [2C, C, 3, 1, 1]; undefined for upsample2d
};

struct WanVaeStage {
    std::vector<WanVaeResBlock> blocks;  // num_res_blocks + 1
    bool has_upsample = false;           // every stage but the last
    WanVaeUpsample upsample;
};

struct WanVaeWeights {
    WanVaeConv conv2;                 // "conv2" [z, z, 1, 1, 1], applied before the decoder
    WanVaeConv conv_in;               // "decoder.conv1" [C0, z, 3, 3, 3]
    WanVaeResBlock middle0;           // "decoder.middle.0"
    WanVaeAttention attention;        // "decoder.middle.1"
    WanVaeResBlock middle2;           // "decoder.middle.2"
    std::vector<WanVaeStage> stages;  // "decoder.upsamples.*", numbered consecutively
    WanVaeNorm head_norm;             // "decoder.head.0" [C, 1, 1, 1]
    WanVaeConv head_conv;             // "decoder.head.2" [3, C, 3, 3, 3]
    at::Tensor latent_mean;           // [z] config mean in the decoder dtype
    at::Tensor latent_inv_std;        // [z] 1 / std computed in the decoder dtype, as upstream does
};

// What decode returns: the decoder's raw output, or that clamped to [-1, 1] as the pipeline does.
enum class VaeOutput { kClamped, kRaw };

class WanVaeStream;

class WanVaeDecoder {
  public:
    // Validates every decoder.* / conv2.* tensor against the config (other keys, e.g. encoder.*,
    // are ignored) and copies them to device/dtype (kFloat, kBFloat16 or kHalf). Throws
    // FormatError listing all missing, unexpected and mis-shaped tensors at once.
    static WanVaeDecoder load(const TensorMap& weights, const WanVaeConfig& config,
                              at::Device device, at::ScalarType dtype);

    // latents: [B, F, z, H, W] normalised latents (any device and floating dtype; converted to the
    // decoder's). Returns [B, T, 3, sH, sW] in the decoder's dtype on its device, T =
    // config.output_frames(F), s = config.spatial_factor().
    at::Tensor decode(const at::Tensor& latents, VaeOutput output = VaeOutput::kClamped) const;

    // A fresh stream with an empty feature cache. It shares the weights and may outlive *this.
    WanVaeStream start_stream() const;

    const WanVaeConfig& config() const { return config_; }
    at::Device device() const { return device_; }
    at::ScalarType dtype() const { return dtype_; }
    const WanVaeWeights& weights() const { return *weights_; }

  private:
    WanVaeDecoder(WanVaeConfig config, at::Device device, at::ScalarType dtype,
                  std::shared_ptr<const WanVaeWeights> weights);

    WanVaeConfig config_;
    at::Device device_;
    at::ScalarType dtype_;
    std::shared_ptr<const WanVaeWeights> weights_;
};

// Decodes a video chunk by chunk. The first chunk's first latent frame yields one frame, every
// later latent frame temporal_factor() frames, so concatenating the chunks' outputs equals
// WanVaeDecoder::decode of the concatenated latents.
class WanVaeStream {
  public:
    // latents: [B, F, z, H, W] with F >= 1; B, H and W must match the first chunk's until reset().
    // Returns [B, T, 3, sH, sW]. On error (bad shape, out of memory) the cache is left unchanged.
    at::Tensor decode_chunk(const at::Tensor& latents, VaeOutput output = VaeOutput::kClamped);

    // Forgets the cache: the next chunk starts a new video.
    void reset();

    int64_t latent_frames_decoded() const { return latent_frames_; }
    // One entry per cached causal conv, in call order; empty before that conv first ran.
    // Each is [B, C, 2, H, W] once two frames have passed ([B, C, 1, H, W] before).
    std::vector<std::vector<int64_t>> cache_shapes() const;
    int64_t cache_bytes() const;

  private:
    friend class WanVaeDecoder;
    explicit WanVaeStream(WanVaeDecoder decoder);

    WanVaeDecoder decoder_;          // shares the weights
    std::vector<at::Tensor> cache_;  // per causal conv slot: [B, C, <=2, h, w] last input frames
    int64_t latent_frames_ = 0;
    std::vector<int64_t> latent_shape_;  // [B, z, H, W] of the first chunk
};

// frames: [T, 3, H, W] or [1, T, 3, H, W] in [-1, 1] (any floating dtype and device) ->
// uint8 [T, H, W, 3] on the same device: round(clamp(x * 0.5 + 0.5, 0, 1) * 255).
at::Tensor to_rgb8(const at::Tensor& frames);

}  // namespace qvg::core
