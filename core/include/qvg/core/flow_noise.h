#pragma once
// Where the sampler's Gaussian noise comes from: a private seeded generator (reproducible across
// CPU and CUDA: numbers are drawn on a CPU generator in float32 and then moved), or tensors
// replayed from a reference run (the golden fixtures' noise / renoise_b{b}_s{j}).

#include <cstdint>
#include <map>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace qvg::core {

class NoiseSource {
  public:
    virtual ~NoiseSource() = default;
    // The starting noise of block `block`, shape [B, F, C, H, W], in `options`.
    virtual at::Tensor initial(int64_t block, at::IntArrayRef shape,
                               const at::TensorOptions& options) = 0;
    // The fresh noise mixed in after denoising step `step` of block `block`.
    virtual at::Tensor renoise(int64_t block, int64_t step, at::IntArrayRef shape,
                               const at::TensorOptions& options) = 0;
};

// Draws in call order from one CPU generator seeded once; the same seed gives the same numbers
// on every device and dtype (bf16 noise is the float32 draw rounded).
class SeededNoise final : public NoiseSource {
  public:
    explicit SeededNoise(uint64_t seed);
    at::Tensor initial(int64_t block, at::IntArrayRef shape,
                       const at::TensorOptions& options) override;
    at::Tensor renoise(int64_t block, int64_t step, at::IntArrayRef shape,
                       const at::TensorOptions& options) override;

  private:
    at::Tensor draw(at::IntArrayRef shape, const at::TensorOptions& options);
    at::Generator generator_;
};

// Replays a reference run: "noise" [B, F_total, C, H, W] (block b uses frames
// b*frames_per_block ..) and "renoise_b{b}_s{j}" [B*F, C, H, W] (upstream's randn_like on the
// flattened batch). Throws Error naming the tensor when one is missing or does not fit.
class ReplayedNoise final : public NoiseSource {
  public:
    ReplayedNoise(std::map<std::string, at::Tensor> tensors, int64_t frames_per_block);
    at::Tensor initial(int64_t block, at::IntArrayRef shape,
                       const at::TensorOptions& options) override;
    at::Tensor renoise(int64_t block, int64_t step, at::IntArrayRef shape,
                       const at::TensorOptions& options) override;

  private:
    std::map<std::string, at::Tensor> tensors_;
    int64_t frames_per_block_;
};

}  // namespace qvg::core
