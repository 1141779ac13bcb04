#include "qvg/core/flow_noise.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "qvg/core/error.h"

namespace qvg::core {

SeededNoise::SeededNoise(uint64_t seed)
    : generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

at::Tensor SeededNoise::draw(at::IntArrayRef shape, const at::TensorOptions& options) {
    at::Tensor cpu = at::randn(shape, generator_, at::TensorOptions().dtype(at::kFloat));
    return cpu.to(options.device(), options.dtype().toScalarType());
}

at::Tensor SeededNoise::initial(int64_t /*block*/, at::IntArrayRef shape,
                                const at::TensorOptions& options) {
    return draw(shape, options);
}

at::Tensor SeededNoise::renoise(int64_t /*block*/, int64_t /*step*/, at::IntArrayRef shape,
                                const at::TensorOptions& options) {
    return draw(shape, options);
}

ReplayedNoise::ReplayedNoise(std::map<std::string, at::Tensor> tensors, int64_t frames_per_block)
    : tensors_(std::move(tensors)), frames_per_block_(frames_per_block) {
    QVG_CHECK(frames_per_block > 0, "replayed noise: frames per block must be positive, found {}",
              frames_per_block);
    QVG_CHECK(tensors_.count("noise") == 1, "replayed noise: tensor 'noise' is missing");
}

at::Tensor ReplayedNoise::initial(int64_t block, at::IntArrayRef shape,
                                  const at::TensorOptions& options) {
    const at::Tensor& all = tensors_.at("noise");  // [B, F_total, C, H, W]
    const int64_t first = block * frames_per_block_;
    QVG_CHECK(shape.size() == 5 && all.dim() == 5 && all.size(0) == shape[0] &&
                  first + shape[1] <= all.size(1) && all.size(2) == shape[2] &&
                  all.size(3) == shape[3] && all.size(4) == shape[4],
              "replayed noise: 'noise' {} has no frames {}..{} of shape {}", all.sizes(), first,
              first + (shape.size() > 1 ? shape[1] : 0) - 1, shape);
    return all.narrow(1, first, shape[1]).to(options.device(), options.dtype().toScalarType());
}

at::Tensor ReplayedNoise::renoise(int64_t block, int64_t step, at::IntArrayRef shape,
                                  const at::TensorOptions& options) {
    const std::string name = fmt::format("renoise_b{}_s{}", block, step);
    auto it = tensors_.find(name);
    QVG_CHECK(it != tensors_.end(), "replayed noise: tensor '{}' is missing", name);
    QVG_CHECK(it->second.numel() == c10::multiply_integers(shape),
              "replayed noise: '{}' {} does not fit {}", name, it->second.sizes(), shape);
    return it->second.reshape(shape).to(options.device(), options.dtype().toScalarType());
}

}  // namespace qvg::core
