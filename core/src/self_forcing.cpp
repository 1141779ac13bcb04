#include "qvg/core/self_forcing.h"

#include <chrono>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "qvg/core/error.h"

namespace qvg::core {
namespace {

void synchronize(at::Device device) {
    if (!device.is_cpu()) {
        c10::impl::getDeviceGuardImpl(device.type())->synchronizeDevice(device.index());
    }
}

}  // namespace

SelfForcingSession::SelfForcingSession(const WanDiT& model, TextContext text, History& history,
                                       std::unique_ptr<NoiseSource> noise, LatentGeometry geometry,
                                       SelfForcingOptions options, FlowSchedule schedule)
    : model_(model),
      text_(std::move(text)),
      history_(history),
      noise_(std::move(noise)),
      geometry_(geometry),
      options_(std::move(options)),
      schedule_(std::move(schedule)) {
    const WanConfig& c = model.config();
    QVG_CHECK(noise_ != nullptr, "Self-Forcing session: no noise source");
    QVG_CHECK(options_.frames_per_block > 0,
              "Self-Forcing session: frames per block must be "
              "positive, found {}",
              options_.frames_per_block);
    QVG_CHECK(geometry_.batch > 0 && geometry_.height > 0 && geometry_.width > 0 &&
                  geometry_.height % c.patch_size[1] == 0 && geometry_.width % c.patch_size[2] == 0,
              "Self-Forcing session: latent size {}x{} (batch {}) must be positive multiples of "
              "the patch {}x{}",
              geometry_.height, geometry_.width, geometry_.batch, c.patch_size[1], c.patch_size[2]);
    QVG_CHECK(
        text_.batch() == geometry_.batch && static_cast<int64_t>(text_.k.size()) == c.num_layers,
        "Self-Forcing session: the text context (batch {}, {} layers) does not fit batch "
        "{} and the model's {} layers",
        text_.batch(), text_.k.size(), geometry_.batch, c.num_layers);
    QVG_CHECK(history_.num_layers() == c.num_layers,
              "Self-Forcing session: history has {} layers, the model {}", history_.num_layers(),
              c.num_layers);
    if (options_.timesteps.empty()) options_.timesteps = schedule_.self_forcing_steps();
    for (float t : options_.timesteps) {
        QVG_CHECK(t > 0, "Self-Forcing session: denoising timesteps must be positive, found {}", t);
    }
}

void SelfForcingSession::restart() {
    history_.clear();
    blocks_done_ = 0;
    finished_ = false;
}

at::Tensor SelfForcingSession::generate_block(CleanPass clean) {
    QVG_CHECK(!finished_,
              "Self-Forcing session: the previous block skipped its clean pass, so the history "
              "lacks its frames; restart() first");
    c10::InferenceMode guard;
    const WanConfig& c = model_.config();
    const at::Device device = model_.device();
    const int64_t block = blocks_done_;
    const int64_t frames = options_.frames_per_block;
    int64_t first_frame = block * frames;
    if (options_.contiguous_positions) {
        const int64_t held = history_.renumber_frames();
        if (held >= 0) first_frame = held;
    }
    const std::vector<int64_t> shape = {geometry_.batch, frames, c.in_dim, geometry_.height,
                                        geometry_.width};
    const auto latent_options = at::TensorOptions().device(device).dtype(model_.dtype());
    const auto t_options = at::TensorOptions().device(device).dtype(at::kFloat);

    ForwardStats stats;
    stats.synchronize = options_.timing == Timing::kDetailed;
    ForwardExtras extras;
    extras.stats = &stats;
    BlockTiming timing;
    timing.block = block;
    std::vector<StepRecord> records;

    if (options_.timing == Timing::kDetailed) synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    at::Tensor x = noise_->initial(block, shape, latent_options);
    at::Tensor x0;
    const auto steps = static_cast<int64_t>(options_.timesteps.size());
    for (int64_t j = 0; j < steps; ++j) {
        const float t = options_.timesteps[static_cast<size_t>(j)];
        at::Tensor flow =
            model_.forward(x, at::full({geometry_.batch, frames}, t, t_options), text_, &history_,
                           first_frame, CacheWrite::kAttendOnly, extras);
        ++timing.dit_calls;
        x0 = schedule_.to_x0(x, flow, t);
        if (options_.record_steps) records.push_back({block, j, t, flow, x0});
        if (j + 1 < steps) {
            x = schedule_.add_noise(x0, noise_->renoise(block, j, shape, latent_options),
                                    options_.timesteps[static_cast<size_t>(j + 1)]);
        }
    }
    if (clean == CleanPass::kRun) {
        // The clean latents at t = 0 write the K/V every later block will attend to; the flow
        // it returns is not needed.
        model_.forward(x0, at::zeros({geometry_.batch, frames}, t_options), text_, &history_,
                       first_frame, CacheWrite::kCommit, extras);
        ++timing.dit_calls;
    }
    synchronize(device);
    const double total_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    timing.cache_ms = stats.cache_ms;
    timing.dit_ms = total_ms - stats.cache_ms;

    // Only now does the session advance: an exception above leaves it where it was.
    ++blocks_done_;
    finished_ = clean == CleanPass::kSkip;
    timings_.push_back(timing);
    for (auto& r : records) steps_.push_back(std::move(r));
    return x0;
}

}  // namespace qvg::core
