#pragma once
// A fixed, cheap view of latents as colour, for models without a VAE: each colour channel is the
// mean of a third of the latent channels (R: 0..4, G: 5..9, B: 10..15 for 16 channels), squashed
// with tanh into [-1, 1] and upsampled bilinearly. It shows structure and motion in the latents;
// it is not what a VAE would draw.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qvg::app {

// Preview pixels per latent pixel (the VAE's factor is 8; 16 makes the small test model's frames
// large enough to record).
inline constexpr std::int64_t kPreviewScale = 16;

// latents [B, F, C, H, W] (C >= 3) -> uint8 [F, H * scale, W * scale, 3] on the CPU.
at::Tensor preview_latents(const at::Tensor& latents, std::int64_t scale);

}  // namespace qvg::app
