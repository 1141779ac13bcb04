#pragma once
// The Self-Forcing block loop: each block of latent frames starts from noise, is denoised in a
// few flow steps (each attending to the clean history plus itself), and is then run once more
// clean at t = 0 to commit its K/V to the history. See docs/self-forcing.md.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "qvg/core/flow_noise.h"
#include "qvg/core/flow_schedule.h"
#include "qvg/core/kv_history.h"
#include "qvg/core/wan_dit.h"

namespace qvg::core {

// Whether generate_block runs the clean pass. Skipping is for the last block only (its K/V
// would never be read); the session refuses further blocks afterwards.
enum class CleanPass { kRun, kSkip };

// How much the timings cost: kBlock synchronises the device once per block; kDetailed also
// around every cache call, so cache_ms is exact but the pipeline stalls 2 * layers times a call.
enum class Timing { kBlock, kDetailed };

struct LatentGeometry {
    int64_t batch = 1;
    int64_t height = 60;  // latent rows (480 px / 8)
    int64_t width = 104;  // latent columns (832 px / 8)
};

struct SelfForcingOptions {
    int64_t frames_per_block = 3;
    std::vector<float> timesteps;  // denoising steps; empty = FlowSchedule::self_forcing_steps()
    bool record_steps = false;     // keep every step's flow and x0 (for --dump)
    Timing timing = Timing::kBlock;
    // Renumber the history 0, 1, 2, ... before every block (History::renumber_frames), so that
    // a sink + window never runs out of RoPE positions in an endless session (the viewer). Off
    // by default: the reference keeps absolute frame indices.
    bool contiguous_positions = false;
};

struct StepRecord {
    int64_t block = 0;
    int64_t step = 0;
    float timestep = 0;
    at::Tensor flow;  // [B, F, C, H, W] model output
    at::Tensor x0;    // [B, F, C, H, W] predicted clean latents
};

struct BlockTiming {
    int64_t block = 0;
    int64_t dit_calls = 0;
    double dit_ms = 0;    // block wall time minus cache_ms
    double cache_ms = 0;  // History read/append inside the DiT calls
};

class SelfForcingSession {
  public:
    // The model and the history must outlive the session. The history must be empty or hold
    // exactly the frames this session will continue from (it starts at frame history-free 0).
    SelfForcingSession(const WanDiT& model, TextContext text, History& history,
                       std::unique_ptr<NoiseSource> noise, LatentGeometry geometry,
                       SelfForcingOptions options = {}, FlowSchedule schedule = FlowSchedule());

    // Generates the next block: [B, frames_per_block, C, H, W] latents in the model dtype.
    // On error nothing is committed and the block can be retried.
    at::Tensor generate_block(CleanPass clean = CleanPass::kRun);

    int64_t blocks_done() const { return blocks_done_; }
    int64_t next_frame() const { return blocks_done_ * options_.frames_per_block; }
    bool finished() const { return finished_; }
    const std::vector<float>& timesteps() const { return options_.timesteps; }
    const FlowSchedule& schedule() const { return schedule_; }
    const TextContext& text() const { return text_; }

    const std::vector<StepRecord>& steps() const { return steps_; }
    const std::vector<BlockTiming>& timings() const { return timings_; }
    void clear_records() { steps_.clear(); }

    // Clears the history and starts again at frame 0 (same prompt, noise stream continues).
    void restart();

  private:
    const WanDiT& model_;
    TextContext text_;
    History& history_;
    std::unique_ptr<NoiseSource> noise_;
    LatentGeometry geometry_;
    SelfForcingOptions options_;
    FlowSchedule schedule_;
    int64_t blocks_done_ = 0;
    bool finished_ = false;
    std::vector<StepRecord> steps_;
    std::vector<BlockTiming> timings_;
};

}  // namespace qvg::core
