#include "qvg/core/flow_schedule.h"

#include <cmath>

#include <ATen/ATen.h>

#include "qvg/core/error.h"

namespace qvg::core {

FlowSchedule::FlowSchedule(double shift, int64_t num_steps, int64_t num_train_timesteps)
    : shift_(shift), num_train_timesteps_(num_train_timesteps) {
    QVG_CHECK(shift > 0 && num_steps > 0 && num_train_timesteps > 0,
              "flow schedule: shift {} and step counts {}, {} must be positive", shift, num_steps,
              num_train_timesteps);
    // The same float32 ATen operations as upstream, in the same order, on the CPU.
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    at::Tensor s = at::linspace(1.0, 0.0, num_steps + 1, f32).slice(0, 0, num_steps);
    sigmas_ = (s * shift).div(s * (shift - 1) + 1).contiguous();
    timesteps_ = (sigmas_ * static_cast<double>(num_train_timesteps)).contiguous();
}

std::vector<float> FlowSchedule::warp(const std::vector<int64_t>& steps) const {
    const int64_t n = timesteps_.size(0);
    std::vector<float> out;
    out.reserve(steps.size());
    for (int64_t step : steps) {
        const int64_t index = num_train_timesteps_ - step;
        QVG_CHECK(index >= 0 && index <= n, "flow schedule: denoising step {} is outside [{}, {}]",
                  step, num_train_timesteps_ - n, num_train_timesteps_);
        out.push_back(index == n ? 0.0f : timesteps_[index].item<float>());
    }
    return out;
}

float FlowSchedule::sigma(float timestep) const {
    QVG_CHECK(std::isfinite(timestep), "flow schedule: timestep {} is not finite", timestep);
    const float* ts = timesteps_.data_ptr<float>();
    const int64_t n = timesteps_.size(0);
    int64_t best = 0;
    double best_distance = std::abs(static_cast<double>(ts[0]) - timestep);
    for (int64_t i = 1; i < n; ++i) {
        const double d = std::abs(static_cast<double>(ts[i]) - timestep);
        if (d < best_distance) {
            best = i;
            best_distance = d;
        }
    }
    return sigmas_.data_ptr<float>()[best];
}

at::Tensor FlowSchedule::to_x0(const at::Tensor& xt, const at::Tensor& flow, float timestep) const {
    QVG_CHECK(xt.sizes() == flow.sizes(), "flow schedule: x_t {} and flow {} differ in shape",
              xt.sizes(), flow.sizes());
    const double s = sigma(timestep);
    return (xt.to(at::kDouble) - flow.to(at::kDouble) * s).to(flow.scalar_type());
}

at::Tensor FlowSchedule::add_noise(const at::Tensor& x0, const at::Tensor& noise,
                                   float timestep) const {
    QVG_CHECK(x0.sizes() == noise.sizes(), "flow schedule: x0 {} and noise {} differ in shape",
              x0.sizes(), noise.sizes());
    // A one-element float32 tensor, as upstream's [N, 1, 1, 1] sigma: unlike a 0-dim tensor or a
    // scalar it takes part in type promotion, so bf16 inputs are combined in float32.
    const at::Tensor s = at::full({1}, sigma(timestep), x0.options().dtype(at::kFloat));
    return ((1 - s) * x0 + s * noise).to(x0.scalar_type());
}

}  // namespace qvg::core
