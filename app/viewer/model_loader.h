#pragma once
// The models the viewer runs: a world model written by `qvg train` (64x64 RGB frames from the
// procedural world's actions, run through WorldModelSession), the built-in test model (a small Wan
// DiT with random weights, when no world model is found) or a Self-Forcing checkpoint with its
// text embedding and, optionally, the Wan2.1 VAE. Loading happens off the UI thread; every failure
// is an exception whose message says which file and what was wrong.

#include <qvg/core/kv_cache.h>
#include <qvg/core/self_forcing.h>
#include <qvg/core/wan_dit.h>
#include <qvg/core/wan_vae.h>
#include <qvg/core/world_model.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace qvg::app {

inline constexpr const char* kTestModelLabel = "random-weight test model (no trained world yet)";
inline constexpr const char* kPreviewDecoderLabel = "fixed latent-to-RGB projection (no VAE)";

struct LoadedModel {
    // A world model: it makes RGB frames itself (dit, text and vae stay empty); the reference
    // world must be the one it was trained on.
    std::unique_ptr<core::WorldModel> world_model;
    std::uint64_t world_seed = 1;
    int world_map_size = 1024;
    // The clip length the world model was trained on (metadata qvg.clip_latents; 0 = unknown):
    // its cache holds at most one less.
    int trained_clip_latents = 0;
    std::unique_ptr<core::WanDiT> dit;
    core::TextContext text;
    std::optional<core::WanVaeDecoder> vae;  // none: the fixed projection shows the latents
    core::LatentGeometry geometry;
    bool random_weights = false;
    std::string label;          // what the UI calls it
    std::string decoder_label;  // how latents become pixels
    c10::Device device = c10::Device(c10::kCPU);
    int frame_width = 0;  // decoded video frame size in pixels
    int frame_height = 0;
};

struct ModelPaths {
    std::filesystem::path model;           // checkpoint file or directory (load_weights)
    std::filesystem::path text_embedding;  // one [L, text_dim] or [1, L, text_dim] tensor
    std::filesystem::path vae;             // Wan2.1_VAE.pth; empty: projection preview
    std::string device = "auto";
};

// The DiT either kind runs, and the KV cache geometry it needs (batch 1).
const core::WanConfig& dit_config(const LoadedModel& model);
core::CacheShape cache_shape(const LoadedModel& model);

// Whether `path` is a safetensors file holding a world-model config (metadata "qvg.world_model").
bool is_world_model_file(const std::filesystem::path& path);

// The viewer-sized test DiT: dim 128, 2 heads, 4 layers, 10 x 16 latents (40 tokens a frame),
// random weights drawn from `seed`, a random text embedding.
std::shared_ptr<const LoadedModel> make_test_model(std::uint64_t seed,
                                                   const std::string& device = "cpu");

// Called with (step, steps, what is being done) as loading advances.
using LoadProgress = std::function<void(int, int, const std::string&)>;

// Loads a world model (is_world_model_file: the text embedding and VAE are not used; the world
// it was trained on comes from the metadata "qvg.world_seed" / "qvg.map_size", else seed 1 and
// 1024 m as `qvg train` defaults), or a Self-Forcing checkpoint + text embedding (+ VAE). Throws
// with a message naming the file.
std::shared_ptr<const LoadedModel> load_model(const ModelPaths& paths,
                                              const LoadProgress& progress = {});

}  // namespace qvg::app
