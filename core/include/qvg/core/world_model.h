#pragma once
// The built-in world model: a small latent autoencoder plus the same causal Wan DiT as the real
// models, conditioned on HY-WorldPlay's per-latent action labels (see docs/default-world.md).
//
//   RGB frames [T x 64 x 64]  --encoder-->  latent frame [C, 16, 16]  (T = frames_per_latent)
//   latents [B, F, C, 16, 16] --WanDiT (patch 1x2x2, action embedding added to e)--> flow
//   latent frame              --decoder-->  RGB frames
//
// The autoencoder stacks the T video frames of one latent along channels and downsamples 4x in
// space with plain convolutions: no temporal state, so any latent decodes on its own. It is
// trained first and then frozen; the DiT sees latents normalised per channel (latent.mean/std).
// The action label (0..80) is embedded like a timestep: the Wan sinusoid, Linear, SiLU, Linear,
// and added to the time embedding through ForwardExtras::frame_embedding, as WorldPlay does. The
// DiT's text cross-attention is kept (same code) with one constant zero "text" token.
//
// Weights (one safetensors file, the config as JSON in the metadata key "qvg.world_model"):
//   ae.enc.* / ae.dec.*       the autoencoder's convolutions (see autoencoder_shapes)
//   action_embedding.{0,2}.*  [dim, freq_dim], [dim] / [dim, dim], [dim]
//   latent.mean, latent.std   [C] per-channel latent statistics
//   dit.*                     the Wan DiT under upstream names

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "qvg/core/kv_history.h"
#include "qvg/core/wan_config.h"
#include "qvg/core/wan_dit.h"
#include "qvg/core/weights.h"

namespace qvg::core {

struct WorldModelConfig {
    int64_t image_size = 64;         // square frames, pixels
    int64_t frames_per_latent = 4;   // video frames stacked into one latent frame
    int64_t latent_channels = 16;    // C
    int64_t ae_width = 32;           // encoder/decoder channels at full resolution (2x below)
    int64_t decoder_width = 0;       // the decoder's own width; 0: ae_width
    int64_t chunk_latents = 1;       // latent frames per generated block
    int64_t sample_steps = 4;        // denoising steps per block
    double shift = 3.0;              // flow shift: sigma = shift*u / (1 + (shift-1)*u)
    double context_noise_max = 0.1;  // training: clean-pass inputs get sigma in [0, this]
    WanConfig dit;                   // in_dim = out_dim = latent_channels

    int64_t latent_size() const { return image_size / 4; }
    int64_t decoder_channels() const { return decoder_width > 0 ? decoder_width : ae_width; }
    int64_t tokens_per_latent() const {
        return (latent_size() / dit.patch_size[1]) * (latent_size() / dit.patch_size[2]);
    }

    // The shipped model: 64x64 frames, 4 per latent, 16x16x16 latents, DiT dim 256, 6 layers,
    // 4 heads of 64, FFN 1024, patch 1x2x2 (64 tokens per latent frame).
    static WorldModelConfig small();
    // A few-thousand-parameter model on 16x16 frames for tests.
    static WorldModelConfig tiny();

    // Throws Error naming the first inconsistent field.
    void validate() const;
    std::string to_json() const;
    // Throws Error on malformed JSON or missing keys.
    static WorldModelConfig from_json(const std::string& text);

    bool operator==(const WorldModelConfig&) const = default;
};

// Metadata key of the config in a world-model safetensors file.
inline constexpr const char* kWorldModelMetadataKey = "qvg.world_model";

// Name and shape of every tensor a world-model file holds (DiT names prefixed "dit.").
std::vector<ExpectedTensor> world_model_tensors(const WorldModelConfig& config);

// Fresh weights: convolutions N(0, 2/fan_in) (residual outputs scaled by 0.1), DiT linears
// N(0, 0.02^2), modulation tables N(0, 1/dim), the flow head and the action embedding's output
// layer zero, norms 1, biases 0, latent statistics 0 / 1. Deterministic for a seed.
TensorMap init_world_model_weights(const WorldModelConfig& config, uint64_t seed);

class WorldModel {
  public:
    // Checks every tensor against world_model_tensors (one FormatError listing all problems).
    // kTraining keeps float32 leaf tensors that require grad (autoencoder_parameters,
    // dit_parameters); kInference runs every call in inference mode.
    WorldModel(const WorldModelConfig& config, const TensorMap& weights, at::Device device,
               WanMode mode = WanMode::kInference);

    // Reads a file written by save(). Throws FormatError when the config metadata is missing or
    // the tensors do not fit it.
    static WorldModel load(const std::filesystem::path& path, at::Device device,
                           WanMode mode = WanMode::kInference);
    // All weights in float32 plus the config (and `metadata`), written atomically.
    void save(const std::filesystem::path& path,
              const std::map<std::string, std::string>& metadata = {}) const;
    // Detached copies under the file's names.
    TensorMap weights() const;

    const WorldModelConfig& config() const { return config_; }
    const WanDiT& dit() const { return dit_; }
    at::Device device() const { return device_; }
    WanMode mode() const { return mode_; }

    std::vector<at::Tensor> autoencoder_parameters() const;
    // The decoder's tensors only (ae.dec.*): fine-tuning them leaves the latent space, and so
    // the DiT, as it is.
    std::vector<at::Tensor> decoder_parameters() const;
    // The DiT's tensors and the action embedding.
    std::vector<at::Tensor> dit_parameters() const;

    // video [N, 3T, H, W] in [-1, 1] -> raw latents [N, C, h, w].
    at::Tensor encode(const at::Tensor& video) const;
    // raw latents [N, C, h, w] -> video [N, 3T, H, W] (not clamped).
    at::Tensor decode(const at::Tensor& latents) const;
    // Raw <-> normalised latents (any leading dims, channel dim at -3).
    at::Tensor normalize(const at::Tensor& raw) const;
    at::Tensor denormalize(const at::Tensor& normalised) const;
    // Sets latent.mean / latent.std [C] (e.g. measured over a batch once the autoencoder is
    // frozen). Throws Error for wrong shapes or a non-positive std.
    void set_latent_stats(const at::Tensor& mean, const at::Tensor& std);

    // labels [B, F] (integers 0..80) -> [B, F, dim].
    at::Tensor action_embedding(const at::Tensor& labels) const;
    // The constant text context for a batch (one zero token through the text MLP).
    TextContext text(int64_t batch) const;
    // The DiT's flow for normalised latents x [B, F, C, h, w] at timesteps t [B, F] (0..1000)
    // under actions labels [B, F], against `history` (see WanDiT::forward).
    // `stats` (optional) accumulates the time spent in the history's reads and appends.
    at::Tensor flow(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels,
                    const TextContext& text, History* history, int64_t first_frame, CacheWrite mode,
                    ForwardStats* stats = nullptr) const;
    // The same for a whole sequence in one call under `attention` (see WanDiT::forward_masked).
    at::Tensor flow(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels,
                    const TextContext& text, const FrameAttention& attention) const;

  private:
    // Checks labels [B, F] against x [B, F, ...] and embeds them as the DiT's frame embedding.
    ForwardExtras action_extras(const at::Tensor& x, const at::Tensor& labels) const;

    WorldModelConfig config_;
    at::Device device_;
    WanMode mode_;
    TensorMap own_;  // ae.*, action_embedding.*, latent.* on device_ (fp32)
    WanDiT dit_;
    at::Tensor sinusoid_freqs_;  // [freq_dim / 2] float64
};

// Pixels <-> model video. rgb8: [N * T, H, W, 3] bytes -> [N, 3T, H, W] float in [-1, 1], and
// back (rounded, clamped). Throws Error when the frame count is not a multiple of T.
at::Tensor video_from_rgb8(const uint8_t* rgb, int64_t frames, int64_t height, int64_t width,
                           int64_t frames_per_latent);
std::vector<uint8_t> rgb8_from_video(const at::Tensor& video, int64_t frames_per_latent);

// sigma for uniform u in [0, 1] under the config's shift.
at::Tensor shifted_sigma(const at::Tensor& u, double shift);

// Training losses. Random numbers come from `gen` (a CPU generator) and are moved to the
// model's device, so a seed gives the same run on every device. Each loss also takes its draws
// ready-made (drawn ahead, e.g. on a data thread, and already on the device), with the same
// result for the same draws.
struct AutoencoderLoss {
    at::Tensor loss;  // scalar: reconstruction MSE + latent penalty
    at::Tensor mse;   // scalar, detached: reconstruction MSE in [-1, 1] units
    // PSNR in dB over [0, 1] pixels of a reconstruction MSE (in [-1, 1] units).
    static double psnr(double mse);
};
// Reconstruction of `video` [N, 3T, H, W] through the decoder from latents with a little noise
// (so that the decoder tolerates the DiT's errors) plus 1e-4 * mean(latent^2). `noise` is unit
// Gaussian [N, C, h, w], scaled by a tenth of the latents' spread. Nothing here waits for the
// device.
// kDecoder: the encoder is frozen (its latents carry no gradient, no latent penalty), for
// fine-tuning the decoder of a trained model.
enum class AutoencoderPart { kBoth, kDecoder };
AutoencoderLoss autoencoder_loss(const WorldModel& model, const at::Tensor& video,
                                 const at::Tensor& noise,
                                 AutoencoderPart part = AutoencoderPart::kBoth);
AutoencoderLoss autoencoder_loss(const WorldModel& model, const at::Tensor& video,
                                 at::Generator& gen);
// The generator version's noise for `latents` latent frames: one randn [latents, C, h, w] (CPU).
at::Tensor draw_autoencoder_noise(const WorldModelConfig& config, int64_t latents,
                                  at::Generator& gen);

// The random numbers of one flow-matching loss for latents [B, N, C, h, w] (K = chunk_latents).
struct FlowMatchingNoise {
    at::Tensor sigma;          // [B, N] noise level of each frame's denoising input (shifted)
    at::Tensor noise;          // [B, N, C, h, w] unit Gaussian
    at::Tensor context_sigma;  // [B, N - K] noise level of the clean passes' inputs
    at::Tensor context_noise;  // [B, N - K, C, h, w] unit Gaussian
    // Own history (OwnHistory::share > 0, else undefined): which clips take their history from
    // the model ([B] float, 1 or 0), the noise of the pass that predicts it ([B, N - K, C, h, w])
    // and that pass's noise level.
    at::Tensor own_history;
    at::Tensor own_history_noise;
    double own_history_sigma = 0.0;
};

// Training on the model's own history (scheduled sampling): in `share` of the clips, every
// history chunk but the first is the model's one-pass prediction of it from the ground truth
// noised to `sigma` (x0 = x - sigma * v; 0.5 is the sampler's last step) instead of the ground
// truth, so that the model learns to continue from imperfect frames of its own, as it must when
// it rolls out. share 0 = teacher forcing.
struct OwnHistory {
    double share = 0.0;
    double sigma = 0.5;
    // Throws Error for a share outside [0, 1] or a sigma outside (0, 1].
    void validate() const;
};

// Draws on the CPU from `gen`, in this order: u ~ U[0, 1) [B, N] (sigma = shifted_sigma(u)),
// noise ~ N(0, 1) [B, N, C, h, w], u_c ~ U[0, 1) [B, N - K] (context_sigma =
// u_c * context_noise_max), context_noise ~ N(0, 1) [B, N - K, C, h, w]; then, with
// own.share > 0, u_h ~ U[0, 1) [B] (own_history = u_h < share) and own_history_noise ~ N(0, 1)
// [B, N - K, C, h, w]. Throws Error for a share outside [0, 1] or a sigma outside (0, 1].
FlowMatchingNoise draw_flow_matching_noise(const WorldModelConfig& config,
                                           at::IntArrayRef latent_shape, at::Generator& gen,
                                           const OwnHistory& own = {});

// Flow matching with per-frame noise under the block protocol (teacher forcing): for each
// chunk of chunk_latents frames, a denoising pass at independent per-frame sigmas attends to the
// clean passes of all earlier chunks, whose inputs are noised by at most context_noise_max (with
// that timestep). Gradients flow through the clean passes' K/V. All of it runs as one DiT call
// over [clean chunks 0..N/K-2 ++ noisy chunks] (teacher_forcing_attention), which computes what
// the block-by-block calls (each chunk's denoising call against a history, then its clean
// committing call) would, up to rounding.
// latents [B, N, C, h, w] normalised, N a positive multiple of chunk_latents; labels [B, N]
// integers. Returns the mean MSE between predicted and true flow (noise - x0) over all frames.
// With noise.own_history defined, the clips it marks first get their history predicted without
// gradients: one pass of the same call over [clean chunks ++ chunks 0..N/K-2 noised to
// noise.own_history_sigma] (ground-truth history), x0 = x - sigma * v; chunks 1..N/K-2 of that
// prediction then stand in for the ground truth in the clean passes (chunk 0 stays: sampling
// starts from ground-truth context). The targets stay the ground truth.
at::Tensor flow_matching_loss(const WorldModel& model, const at::Tensor& latents,
                              const at::Tensor& labels, const FlowMatchingNoise& noise);
// The same with the draws of draw_flow_matching_noise(model.config(), latents.sizes(), gen).
at::Tensor flow_matching_loss(const WorldModel& model, const at::Tensor& latents,
                              const at::Tensor& labels, at::Generator& gen);

}  // namespace qvg::core
