#pragma once
// `qvg generate` for a world model (a file from `qvg train`, or the built-in default when no
// --model is given): the model walks the procedural world it was trained on, primed with the
// ground truth at the start, and its frames go to an MP4 and a report with frames per second and
// PSNR against the ground truth.

#include <cstdint>
#include <string>

#include "cache_options.h"

namespace qvg::cli {

struct WorldGenerateOptions {
    std::string model;  // a world-model safetensors file
    std::string device = "auto";
    int64_t latent_frames = 32;  // generated latent frames (after the context)
    int64_t context = 1;         // ground-truth latent frames first
    std::string walk = "mixed";  // see parse_walk_kind
    uint64_t seed = 0;           // walk, noise and codec streams
    CacheOptions cache;
    int scale = 4;  // MP4 pixels per model pixel (nearest neighbour)
    std::string output;
    std::string report;
    int threads = 0;
};

// Whether `path` is a safetensors file that holds a world model (metadata qvg.world_model).
bool is_world_model_file(const std::string& path);

int run_generate_world(const WorldGenerateOptions& options);

}  // namespace qvg::cli
