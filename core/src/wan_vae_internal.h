#pragma once
// Pieces of the Wan VAE decoder shared between its source files (not a public interface).

#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/wan_vae.h"

namespace qvg::core::wan_vae_detail {

// Reads and checks every decoder tensor (wan_vae_weights.cpp).
WanVaeWeights load_weights(const TensorMap& weights, const WanVaeConfig& config, at::Device device,
                           at::ScalarType dtype);

// Number of feature-cache slots: one per causal conv with a time kernel of 3, in call order.
size_t cache_slot_count(const WanVaeConfig& config);

// Decodes one normalised latent frame z [B, z, 1, H, W] (decoder device and dtype) to
// [B, 3, t, sH, sW] with t = 1 for a stream's first latent frame and temporal_factor() after,
// reading and replacing the slots of `cache` (wan_vae_layers.cpp).
at::Tensor decode_latent_frame(const WanVaeWeights& weights, const at::Tensor& z,
                               std::vector<at::Tensor>& cache);

}  // namespace qvg::core::wan_vae_detail
