#pragma once
// The flow-matching schedule of Self-Forcing: FlowMatchScheduler(shift, sigma_min = 0,
// extra_one_step) with set_timesteps(1000, training): sigmas = linspace(1, 0, 1001)[:-1] in
// float32, warped to shift*s / (1 + (shift-1)*s), timesteps = 1000 * sigma. The few-step sampler
// uses "warped" steps (the schedule's own timesteps at 1000 - step) and looks sigma up by the
// nearest timestep, exactly as upstream does, so the numbers match bit for bit.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qvg::core {

class FlowSchedule {
  public:
    explicit FlowSchedule(double shift = 5.0, int64_t num_steps = 1000,
                          int64_t num_train_timesteps = 1000);

    double shift() const { return shift_; }
    const at::Tensor& sigmas() const { return sigmas_; }        // [num_steps] float32, CPU
    const at::Tensor& timesteps() const { return timesteps_; }  // [num_steps] float32, CPU

    // The pipeline's warp_denoising_step: (timesteps ++ [0])[num_train_timesteps - step].
    // Throws Error for steps outside [0, num_train_timesteps].
    std::vector<float> warp(const std::vector<int64_t>& steps) const;

    // Self-Forcing's four steps: warp({1000, 750, 500, 250}) = 1000, 937.5, 833.33, 625 at shift 5.
    std::vector<float> self_forcing_steps() const { return warp({1000, 750, 500, 250}); }

    // sigma of the timestep nearest to t (first index on ties), as upstream's argmin lookup.
    float sigma(float timestep) const;

    // x0 = xt - sigma(t) * flow, computed in float64, returned in flow's dtype.
    at::Tensor to_x0(const at::Tensor& xt, const at::Tensor& flow, float timestep) const;

    // (1 - sigma(t)) * x0 + sigma(t) * noise, computed in float32 (upstream's sigma is float32),
    // returned in x0's dtype.
    at::Tensor add_noise(const at::Tensor& x0, const at::Tensor& noise, float timestep) const;

  private:
    double shift_;
    int64_t num_train_timesteps_;
    at::Tensor sigmas_;     // [num_steps] float32
    at::Tensor timesteps_;  // [num_steps] float32
};

}  // namespace qvg::core
