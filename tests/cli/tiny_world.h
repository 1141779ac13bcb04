#pragma once
// A tiny world model file for command tests: fresh weights with a non-zero flow head, so that
// what the cache holds changes the output.

#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "qvg/core/world_model.h"

namespace qvg {

inline std::filesystem::path save_tiny_world_model(const std::filesystem::path& dir) {
    const core::WorldModelConfig c = core::WorldModelConfig::tiny();
    core::TensorMap w = core::init_world_model_weights(c, 2);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(9);
    w["dit.head.head.weight"] = at::randn(w["dit.head.head.weight"].sizes(), g) * 0.1;
    const std::filesystem::path path = dir / "tiny_world.safetensors";
    core::WorldModel(c, w, at::kCPU).save(path);
    return path;
}

}  // namespace qvg
