// qvg eval: the quality benchmark of the built-in world model. Along scripted trajectories of the
// procedural world (eval_trajectories.h) the model is primed with ground-truth context and then
// (1) rolled out on its own, once per cache configuration (eval_caches.h), with the same noise, and
// (2) scored "1 chunk ahead": it sees the ground truth up to each chunk and predicts the next.
// Generated frames are compared with the ground-truth render (PSNR, SSIM), with copying the last
// frame the model was given, and with the BF16 cache's output of the same seed (the paper's
// metric). Frames that revisit a place seen long before (world/revisits.h) are scored apart, for
// every cache and for sliding windows that may have forgotten the place. Writes a JSON report and
// prints three tables: per trajectory, the quality / memory Pareto table and revisits vs history.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <qvg/world/image_metrics.h>
#include <qvg/world/revisits.h>

#include "build_commit.h"
#include "cache_options.h"
#include "commands.h"
#include "eval_caches.h"
#include "eval_trajectories.h"
#include "json_file.h"
#include "parallel.h"
#include "progress.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/rng.h"
#include "qvg/core/world_model.h"
#include "qvg/core/world_model_session.h"
#include "table.h"

namespace qvg::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct EvalOptions {
    std::string model;
    std::string out;
    std::string device = "auto";
    int threads = 0;
    uint64_t world_seed = 1;
    int map_size = 1024;
    uint64_t seed = 0;       // sampler noise and codec streams
    uint64_t walk_seed = 0;  // start poses and the random walk
    int context = 1;         // ground-truth latents before generation
    int frames = 256;        // generated frames of the open trajectories
    int loop_side = 4;       // latents per side of the square / out leg of out-and-back
    int64_t steps = 0;       // denoising steps per chunk; 0 = the model's
    std::vector<std::string> trajectories = default_eval_trajectories();
    int walks = 1;  // walks per trajectory, each from its own start pose with its own noise
    int batch = 1;  // walks of equal length run side by side as one batch
    std::vector<std::string> caches = default_eval_caches();
    std::vector<int64_t> windows = {16, 64, 128};  // BF16 windows for the revisit table
    // Spans of 16 latents: with the built-in model's 64 tokens per latent, a span of 8 spent a
    // third of QVG's bytes on its codebook (model card, 256-frame tables).
    int64_t span_frames = 16;
    int centroids = 32;
    bool ahead = true;
    double revisit_distance_m = 4.0;
    double revisit_angle_deg = 30.0;
    int revisit_gap_frames = 64;
    std::string commit = build_commit();
};

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double mean(const std::vector<double>& v) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
}

// NaN (an empty mean) as JSON null.
json number(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

std::string fixed(double v, int digits) {
    return std::isnan(v) ? "-" : fmt::format("{:.{}f}", v, digits);
}

std::string human_bytes(double bytes) {
    if (bytes >= 1048576.0) return fmt::format("{:.2f} MiB", bytes / 1048576.0);
    return fmt::format("{:.1f} KiB", bytes / 1024.0);
}

// Per-frame PSNR, SSIM and detail of frames against their references. The detail ratio (the
// frames' fine structure over their references', world::detail_rgb8) tells a blurred frame from
// a sharp one of the same PSNR: a prediction that has lost track of the ground truth scores a
// higher PSNR the blurrier it is.
struct Scores {
    std::vector<double> psnr, ssim, detail;  // detail: of the frame itself, per frame
    double detail_sum = 0, truth_detail_sum = 0;

    void add(std::span<const uint8_t> got, std::span<const uint8_t> truth, int size) {
        psnr.push_back(world::psnr(got, truth));
        ssim.push_back(world::ssim_rgb8(got, truth, size, size));
        detail.push_back(world::detail_rgb8(got, size, size));
        detail_sum += detail.back();
        truth_detail_sum += world::detail_rgb8(truth, size, size);
    }
    // Pooled over the frames: sum of their detail / sum of the references'.
    double detail_ratio() const {
        return truth_detail_sum > 0 ? detail_sum / truth_detail_sum
                                    : std::numeric_limits<double>::quiet_NaN();
    }
    json to_json() const {
        return {{"psnr", psnr},
                {"ssim", ssim},
                {"detail", detail},
                {"mean_psnr", number(mean(psnr))},
                {"mean_ssim", number(mean(ssim))},
                {"detail_ratio", number(detail_ratio())}};
    }
};

struct RevisitScore {
    int frames = 0;      // revisit frames
    int remembered = 0;  // of them, generated while a sighting of the place was in the cache
    double psnr = std::numeric_limits<double>::quiet_NaN();
    double ssim = std::numeric_limits<double>::quiet_NaN();
    double other_psnr = std::numeric_limits<double>::quiet_NaN();  // the other generated frames

    json to_json() const {
        return {{"frames", frames},
                {"remembered", remembered},
                {"mean_psnr", number(psnr)},
                {"mean_ssim", number(ssim)},
                {"other_mean_psnr", number(other_psnr)}};
    }
};

// A run's frames against the BF16 cache's frames of the same seed (the paper's metric).
struct VsBf16 {
    std::vector<double> psnr;  // per generated frame
    double squared_error = 0;  // summed over all bytes, for the pooled PSNR
    int64_t bytes = 0;

    void add(std::span<const uint8_t> a, std::span<const uint8_t> b) {
        const double mse = world::mean_squared_error(a, b);
        psnr.push_back(world::psnr_from_mse(mse));
        squared_error += mse * static_cast<double>(a.size());
        bytes += static_cast<int64_t>(a.size());
    }
    double video_psnr() const {
        return bytes > 0 ? world::psnr_from_mse(squared_error / static_cast<double>(bytes))
                         : std::numeric_limits<double>::quiet_NaN();
    }
};

struct Run {
    std::string cache;  // the entry's name
    std::string label;  // what the table shows
    core::CachePolicy policy;
    Scores truth;          // per generated frame, against the ground truth
    VsBf16 vs_bf16;        // the rollout against the BF16 rollout
    VsBf16 ahead_vs_bf16;  // each chunk predicted from the ground truth, against BF16's prediction
    std::vector<uint8_t> frames;        // generated RGB (kept while the trajectory runs)
    std::vector<uint8_t> ahead_frames;  // predicted RGB, 1 chunk ahead (same)
    core::CacheStats stats;             // at the end of the rollout
    double rollout_ms = 0;
    std::vector<double> chunk_ms;  // per rollout chunk: the history grows along the rollout
    int64_t chunks = 0;
    bool has_ahead = false;
    Scores ahead;
    double ahead_ms = 0;
    RevisitScore revisit;
};

struct TrajectoryResult {
    EvalTrajectory trajectory;  // its name carries "#<walk>" when --walks is above 1
    std::string kind;           // the trajectory's name as given
    int walk = 0;
    uint64_t noise_seed = 0;
    std::vector<world::Revisit> revisits;  // among the generated frames (clip frame indices)
    Scores copy;                           // the last context frame, copied
    Scores ahead_copy;                     // the last ground-truth frame before each chunk
    Scores autoencoder;                    // the ground truth through encoder and decoder: the
                                           // best any latent prediction can score
    std::vector<Run> runs;                 // one per cache entry, in the entries' order
    std::vector<Run> history_runs;         // BF16 windows of --windows (trajectories with revisits)
};

// Everything that can be checked before loading anything, so that mistakes fail at once.
std::vector<EvalCache> check_options(const EvalOptions& o) {
    std::error_code ec;
    QVG_CHECK(!o.model.empty() && fs::is_regular_file(o.model, ec),
              "--model {}: no such file (a world model from qvg train, .safetensors)", o.model);
    QVG_CHECK(o.frames > 0, "--frames {} must be positive", o.frames);
    QVG_CHECK(o.context > 0, "--context {} must be at least 1 latent", o.context);
    QVG_CHECK(o.loop_side >= 1, "--loop-side {} must be at least 1 latent", o.loop_side);
    QVG_CHECK(o.span_frames >= 1, "--span {} must be at least 1 latent frame", o.span_frames);
    QVG_CHECK(!o.trajectories.empty(), "--trajectories: give at least one trajectory");
    for (const auto& t : o.trajectories) {
        try {
            check_eval_trajectory(t);
        } catch (const core::Error& e) {
            core::fail("--trajectories: {}", e.what());
        }
    }
    for (int64_t w : o.windows) QVG_CHECK(w >= 1, "--windows: {} is not a positive size", w);
    QVG_CHECK(o.revisit_distance_m >= 0 && o.revisit_angle_deg >= 0 && o.revisit_gap_frames >= 0,
              "--revisit-distance, --revisit-angle and --revisit-gap must not be negative");
    if (!o.out.empty()) {
        const fs::path parent = fs::absolute(o.out).parent_path();
        QVG_CHECK(fs::is_directory(parent, ec), "--out {}: directory {} does not exist", o.out,
                  parent.string());
    }
    std::vector<EvalCache> caches;
    try {
        for (const auto& name : o.caches) caches.push_back(parse_eval_cache(name));
    } catch (const core::Error& e) {
        core::fail("--caches: {}", e.what());
    }
    QVG_CHECK(!caches.empty(), "--caches: give at least one cache configuration");
    // The paper's metric compares with the BF16 cache's output: it always runs, first.
    auto bf16 = std::find_if(caches.begin(), caches.end(),
                             [](const EvalCache& c) { return c.is_bf16_full(); });
    if (bf16 == caches.end()) {
        caches.insert(caches.begin(), parse_eval_cache("bf16"));
    } else {
        std::rotate(caches.begin(), bf16, bf16 + 1);
    }
    const bool needs_budget = std::any_of(caches.begin(), caches.end(),
                                          [](const EvalCache& c) { return c.budget_matched(); });
    const bool has_reference = std::any_of(
        caches.begin(), caches.end(), [](const EvalCache& c) { return c.is_budget_reference(); });
    QVG_CHECK(!needs_budget || has_reference,
              "--caches: a window without a size is matched to the bytes of {}, which is not in "
              "the list; add it or give the window a size (window-16)",
              kBudgetReference);
    return caches;
}

core::CachePolicy policy_for(const EvalCache& entry, const EvalOptions& o,
                             const core::WorldModelConfig& c, int64_t window_frames) {
    CacheOptions options = entry.options;
    if (options.codec == "qvg" && !options.centroids) options.centroids = o.centroids;
    options.span_frames = o.span_frames;
    options.seed = o.seed;
    if (entry.history != EvalHistory::kFull) options.window_frames = window_frames;
    if (entry.history == EvalHistory::kSinkWindow) options.sink_frames = o.context;
    try {
        core::CachePolicy policy =
            make_cache_policy(options, c.dit.head_dim(), c.tokens_per_latent());
        policy.hold_bf16 = true;  // a float32 model's rows are held as BF16, as named
        return policy;
    } catch (const core::Error& e) {
        core::fail("--caches {}: {}", entry.name, e.what());
    }
}

std::string label_of(const EvalCache& entry, const core::CachePolicy& p) {
    switch (entry.history) {
        case EvalHistory::kWindow:
            return fmt::format("BF16 window {}", p.window_frames);
        case EvalHistory::kSinkWindow:
            return fmt::format("BF16 sink {} + window {}", p.sink_frames, p.window_frames);
        case EvalHistory::kFull:
            break;
    }
    // Rows that differ only in the centroids (-c<C>) or iterations (-i<N>) must be told apart.
    std::string label = p.codec.describe();
    if (entry.options.centroids) label += fmt::format(" C{}", *entry.options.centroids);
    if (entry.options.iterations) label += fmt::format(" I{}", *entry.options.iterations);
    return label;
}

// A batch's cache statistics for one of its `walks` walks: every walk holds the same frames in
// spans of the same sizes, so the bytes divide evenly; the errors are the batch's means.
core::CacheStats per_walk(core::CacheStats stats, int64_t walks) {
    if (walks == 1) return stats;
    stats.bytes /= walks;
    stats.bf16_bytes /= walks;
    for (auto& layer : stats.layers) {
        layer.sink_bytes /= walks;
        layer.span_bytes /= walks;
        layer.tail_bytes /= walks;
        layer.bf16_bytes /= walks;
    }
    return stats;
}

// Runs the model along trajectories under one cache policy. `report` is called after every
// chunk.
class Evaluator {
  public:
    enum class Mode {
        kRollout,  // the model on its own: every chunk generated and committed
        kAhead,    // teacher forcing: each chunk predicted from the ground truth before it (not
                   // committed), then the ground truth takes its place in the history
    };

    Evaluator(const core::WorldModel& model, const EvalOptions& o, std::function<void()> report)
        : model_(model), o_(o), report_(std::move(report)) {}

    // Runs walks of equal length side by side, one batch: walk j of `walks` into runs[j], all
    // under runs[0]'s policy. Times are the batch's, shared evenly among its walks.
    void run(const std::vector<const TrajectoryResult*>& walks, const std::vector<Run*>& runs,
             Mode mode) const {
        const EvalTrajectory& first = walks.front()->trajectory;
        const auto b = static_cast<int64_t>(walks.size());
        std::vector<uint64_t> seeds;
        for (const TrajectoryResult* t : walks) {
            QVG_CHECK(t->trajectory.context_latents == first.context_latents &&
                          t->trajectory.generated_latents == first.generated_latents,
                      "eval: walks of one batch must have the same length");
            seeds.push_back(t->noise_seed);
        }
        const core::CachePolicy& policy = runs.front()->policy;
        core::KVCache cache(core::world_cache_shape(model_, b), policy);
        core::WorldModelSession session(model_, cache, {.steps = o_.steps, .seeds = seeds});
        const size_t fb = frame_bytes(first.clip);
        const int64_t k = model_.config().chunk_latents, tl = first.clip.frames_per_latent;
        // The walks' frames [from, from + count) and labels, one walk after another.
        std::vector<uint8_t> rgb;
        std::vector<int> labels;
        auto gather = [&](int64_t from_latent, int64_t latents, bool frames) {
            rgb.clear();
            labels.clear();
            for (const TrajectoryResult* t : walks) {
                const world::Clip& clip = t->trajectory.clip;
                const auto* l = clip.labels.data() + from_latent;
                labels.insert(labels.end(), l, l + latents);
                if (!frames) continue;
                const uint8_t* f = clip.frames.data() + static_cast<size_t>(from_latent * tl) * fb;
                rgb.insert(rgb.end(), f, f + static_cast<size_t>(latents * tl) * fb);
            }
        };
        gather(0, first.context_latents, true);
        session.prime(rgb, first.context_frames(), labels);
        const int64_t chunks = first.generated_latents / k;
        for (Run* run : runs) {
            if (mode == Mode::kRollout) {
                run->frames.reserve(static_cast<size_t>(chunks * k * tl) * fb);
            }
        }
        for (int64_t c = 0; c < chunks; ++c) {
            const int64_t latent = first.context_latents + c * k;
            gather(latent, k, false);
            const core::WorldFrames f =
                mode == Mode::kRollout ? session.step(labels) : session.predict(labels);
            double ms = session.last_step_ms();
            if (mode == Mode::kAhead &&
                c + 1 < chunks) {  // the last chunk's truth would never be attended to
                const auto start = std::chrono::steady_clock::now();
                gather(latent, k, true);
                session.commit(rgb, k * tl, labels);
                ms += ms_since(start);
            }
            // Scored on all threads, a walk to each.
            each_in_parallel(b, at::get_num_threads(), [&](int64_t j) {
                const world::Clip& clip = walks[static_cast<size_t>(j)]->trajectory.clip;
                Run& run = *runs[static_cast<size_t>(j)];
                Scores& scores = mode == Mode::kRollout ? run.truth : run.ahead;
                const auto walk = f.rgb.begin() + j * f.count * static_cast<int64_t>(fb);
                for (int64_t i = 0; i < f.count; ++i) {
                    scores.add(std::span(&*walk + i * static_cast<int64_t>(fb), fb),
                               clip.frame(static_cast<int>(latent * tl + i)), clip.width);
                }
                auto& kept = mode == Mode::kRollout ? run.frames : run.ahead_frames;
                kept.insert(kept.end(), walk, walk + f.count * static_cast<int64_t>(fb));
                const double share = ms / static_cast<double>(b);
                if (mode == Mode::kRollout) run.chunk_ms.push_back(share);
                (mode == Mode::kRollout ? run.rollout_ms : run.ahead_ms) += share;
            });
            for (int64_t j = 0; j < b; ++j) report_();
        }
        const core::CacheStats stats =
            mode == Mode::kRollout ? per_walk(cache.stats(), b) : core::CacheStats{};
        for (Run* run : runs) {
            if (mode == Mode::kRollout) {
                run->chunks = chunks;
                run->stats = stats;
            } else {
                run->has_ahead = true;
            }
        }
    }

    static size_t frame_bytes(const world::Clip& clip) {
        return static_cast<size_t>(clip.width) * static_cast<size_t>(clip.height) * 3;
    }

  private:
    const core::WorldModel& model_;
    const EvalOptions& o_;
    std::function<void()> report_;
};

// Mean PSNR over the runs' frames (rollout or 1 chunk ahead), for progress lines.
double mean_psnr(const std::vector<Run*>& runs, bool ahead) {
    double sum = 0;
    size_t n = 0;
    for (const Run* r : runs) {
        const auto& psnr = ahead ? r->ahead.psnr : r->truth.psnr;
        for (double v : psnr) sum += v;
        n += psnr.size();
    }
    return n > 0 ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

// The copy baselines: the last context frame for the rollout, the last ground-truth frame
// before each chunk for 1 chunk ahead.
void score_copies(TrajectoryResult& t, int64_t chunk_latents) {
    const EvalTrajectory& tr = t.trajectory;
    const int chunk_frames = static_cast<int>(chunk_latents) * tr.clip.frames_per_latent;
    const size_t fb = static_cast<size_t>(tr.clip.width) * static_cast<size_t>(tr.clip.height) * 3;
    const std::span<const uint8_t> last_context(
        tr.clip.frames.data() + (tr.context_frames() - 1) * fb, fb);
    for (int f = tr.context_frames(); f < tr.clip.frame_count(); ++f) {
        t.copy.add(last_context, tr.clip.frame(f), tr.clip.width);
        const int chunk_start =
            tr.context_frames() + (f - tr.context_frames()) / chunk_frames * chunk_frames;
        t.ahead_copy.add(tr.clip.frame(chunk_start - 1), tr.clip.frame(f), tr.clip.width);
    }
}

// The generated part of each walk's ground truth through the autoencoder (all walks of equal
// length in one pass), scored against itself: the ceiling of every prediction made in latent
// space. Also the copy baselines; the scoring on all threads.
void score_baselines(const core::WorldModel& model, const std::vector<TrajectoryResult*>& walks,
                     int64_t chunk_latents) {
    const EvalTrajectory& first = walks.front()->trajectory;
    const int64_t tl = first.clip.frames_per_latent, frames = first.generated_frames();
    const size_t fb = static_cast<size_t>(first.clip.width) * first.clip.height * 3;
    std::vector<uint8_t> truth;
    truth.reserve(walks.size() * static_cast<size_t>(frames) * fb);
    for (const TrajectoryResult* t : walks) {
        const uint8_t* from = t->trajectory.clip.frames.data() +
                              static_cast<size_t>(t->trajectory.context_frames()) * fb;
        truth.insert(truth.end(), from, from + static_cast<size_t>(frames) * fb);
    }
    std::vector<uint8_t> rgb;
    {
        c10::InferenceMode guard;
        const at::Tensor video =
            core::video_from_rgb8(truth.data(), static_cast<int64_t>(walks.size()) * frames,
                                  first.clip.height, first.clip.width, tl)
                .to(model.device());
        rgb = core::rgb8_from_video(model.decode(model.encode(video)).cpu(), tl);
    }
    each_in_parallel(static_cast<int64_t>(walks.size()), at::get_num_threads(), [&](int64_t j) {
        TrajectoryResult& t = *walks[static_cast<size_t>(j)];
        score_copies(t, chunk_latents);
        const world::Clip& clip = t.trajectory.clip;
        const uint8_t* mine = rgb.data() + static_cast<size_t>(j * frames) * fb;
        for (int f = 0; f < frames; ++f) {
            t.autoencoder.add(std::span(mine + static_cast<size_t>(f) * fb, fb),
                              clip.frame(t.trajectory.context_frames() + f), clip.width);
        }
    });
}

void compare_with_bf16(const Run& bf16, const EvalTrajectory& tr, Run& run) {
    const size_t fb = Evaluator::frame_bytes(tr.clip);
    const bool ahead = run.has_ahead && bf16.has_ahead;
    for (int64_t f = 0; f < tr.generated_frames(); ++f) {
        const size_t at = static_cast<size_t>(f) * fb;
        run.vs_bf16.add(std::span(run.frames.data() + at, fb),
                        std::span(bf16.frames.data() + at, fb));
        if (ahead) {
            run.ahead_vs_bf16.add(std::span(run.ahead_frames.data() + at, fb),
                                  std::span(bf16.ahead_frames.data() + at, fb));
        }
    }
}

// Revisit frames of a run, and how many of them were generated while the cache still held a
// sighting of the place (the sink, or the window before the frame's chunk).
void score_revisits(const TrajectoryResult& t, int64_t chunk_latents, Run& run) {
    const EvalTrajectory& tr = t.trajectory;
    const int64_t tl = tr.clip.frames_per_latent;
    const int64_t sink = run.policy.sink_frames, window = run.policy.window_frames;
    std::vector<bool> is_revisit(static_cast<size_t>(tr.generated_frames()), false);
    std::vector<double> psnr, ssim, other;
    for (const world::Revisit& r : t.revisits) {
        const auto g = static_cast<size_t>(r.frame - tr.context_frames());
        is_revisit[g] = true;
        psnr.push_back(run.truth.psnr[g]);
        ssim.push_back(run.truth.ssim[g]);
        const int64_t latent = r.frame / tl;
        const int64_t block =
            tr.context_latents + (latent - tr.context_latents) / chunk_latents * chunk_latents;
        const bool in_sink = r.first_seen / tl < sink;
        const bool in_window =
            window == 0 || r.last_seen / tl >= std::max<int64_t>(sink, block - window);
        if (in_sink || in_window) ++run.revisit.remembered;
    }
    for (size_t g = 0; g < is_revisit.size(); ++g) {
        if (!is_revisit[g]) other.push_back(run.truth.psnr[g]);
    }
    run.revisit.frames = static_cast<int>(t.revisits.size());
    run.revisit.psnr = mean(psnr);
    run.revisit.ssim = mean(ssim);
    run.revisit.other_psnr = mean(other);
}

json run_json(const Run& r) {
    json j = {{"cache", r.cache},
              {"label", r.label},
              {"policy", policy_json(r.policy)},
              {"kv_bytes", r.stats.bytes},
              {"kv_bf16_bytes", r.stats.bf16_bytes},
              {"kv_ratio", r.stats.ratio()},
              {"kv_frames_held", r.stats.frames},
              {"kv", cache_json(r.stats)},
              {"rollout", r.truth.to_json()},
              {"psnr_vs_bf16", r.vs_bf16.psnr},
              {"video_psnr_vs_bf16", number(r.vs_bf16.video_psnr())},
              {"chunks", r.chunks},
              {"rollout_ms", r.rollout_ms},
              {"chunk_ms", r.chunk_ms},
              {"ms_per_chunk", r.rollout_ms / static_cast<double>(r.chunks)},
              {"fps", static_cast<double>(r.truth.psnr.size()) / (r.rollout_ms / 1000.0)},
              {"revisit", r.revisit.to_json()}};
    if (r.has_ahead) {
        json a = r.ahead.to_json();
        a["ms_per_chunk"] = r.ahead_ms / static_cast<double>(r.chunks);
        a["fps"] = static_cast<double>(r.ahead.psnr.size()) / (r.ahead_ms / 1000.0);
        a["psnr_vs_bf16"] = r.ahead_vs_bf16.psnr;
        a["video_psnr_vs_bf16"] = number(r.ahead_vs_bf16.video_psnr());
        j["ahead"] = a;
    } else {
        j["ahead"] = nullptr;
    }
    return j;
}

json pose_json(const input::CameraState& s) {
    return {{"x", s.position.x},
            {"y", s.position.y},
            {"z", s.position.z},
            {"yaw_deg", s.yaw_deg},
            {"pitch_deg", s.pitch_deg}};
}

// One row of the Pareto table: a cache entry over all trajectories.
struct Summary {
    std::string cache, label;
    double kv_bytes = 0, bf16_bytes = 0;  // means over trajectories, at the end of each rollout
    double psnr = 0, ssim = 0;            // means over all generated frames
    double detail = 0;                    // detail ratio, pooled over all generated frames
    double psnr_vs_bf16 = 0;              // pooled over all generated frames
    double ahead_psnr = std::numeric_limits<double>::quiet_NaN();
    double ahead_psnr_vs_bf16 = std::numeric_limits<double>::quiet_NaN();  // pooled, as above
    double ms_per_chunk = 0, fps = 0;
    bool pareto = false;
};

std::vector<Summary> summarize(const std::vector<TrajectoryResult>& results,
                               const std::vector<EvalCache>& caches) {
    std::vector<Summary> rows;
    for (size_t i = 0; i < caches.size(); ++i) {
        Summary s;
        s.cache = caches[i].name;
        // Budget-matched windows differ per trajectory.
        s.label = caches[i].budget_matched()
                      ? fmt::format("BF16 {}window at {} bytes",
                                    caches[i].history == EvalHistory::kSinkWindow ? "sink + " : "",
                                    kBudgetReference)
                      : results.front().runs[i].label;
        std::vector<double> psnr, ssim, ahead;
        VsBf16 vs, ahead_vs;  // pooled over the trajectories
        double ms = 0, chunks = 0, frames = 0, detail = 0, truth_detail = 0;
        for (const auto& t : results) {
            const Run& r = t.runs[i];
            s.kv_bytes += static_cast<double>(r.stats.bytes) / static_cast<double>(results.size());
            s.bf16_bytes +=
                static_cast<double>(r.stats.bf16_bytes) / static_cast<double>(results.size());
            psnr.insert(psnr.end(), r.truth.psnr.begin(), r.truth.psnr.end());
            ssim.insert(ssim.end(), r.truth.ssim.begin(), r.truth.ssim.end());
            detail += r.truth.detail_sum;
            truth_detail += r.truth.truth_detail_sum;
            if (r.has_ahead) ahead.insert(ahead.end(), r.ahead.psnr.begin(), r.ahead.psnr.end());
            vs.squared_error += r.vs_bf16.squared_error;
            vs.bytes += r.vs_bf16.bytes;
            ahead_vs.squared_error += r.ahead_vs_bf16.squared_error;
            ahead_vs.bytes += r.ahead_vs_bf16.bytes;
            ms += r.rollout_ms;
            chunks += static_cast<double>(r.chunks);
            frames += static_cast<double>(r.truth.psnr.size());
        }
        s.psnr = mean(psnr);
        s.ssim = mean(ssim);
        s.detail =
            truth_detail > 0 ? detail / truth_detail : std::numeric_limits<double>::quiet_NaN();
        s.ahead_psnr = mean(ahead);
        s.psnr_vs_bf16 = vs.video_psnr();
        s.ahead_psnr_vs_bf16 = ahead_vs.video_psnr();
        s.ms_per_chunk = ms / chunks;
        s.fps = frames / (ms / 1000.0);
        rows.push_back(s);
    }
    // On the front: no other row holds fewer or equally many bytes with a higher PSNR.
    for (auto& r : rows) {
        r.pareto = std::none_of(rows.begin(), rows.end(), [&](const Summary& q) {
            return &q != &r && q.kv_bytes <= r.kv_bytes && q.psnr > r.psnr;
        });
    }
    return rows;
}

int run_eval(const EvalOptions& o) {
    const std::vector<EvalCache> caches = check_options(o);
    if (o.threads > 0) at::set_num_threads(o.threads);
    c10::InferenceMode guard;
    const at::Device device = core::resolve_device(o.device);
    const core::WorldModel model = core::WorldModel::load(o.model, device);
    const core::WorldModelConfig& c = model.config();
    const int64_t k = c.chunk_latents, tl = c.frames_per_latent;
    QVG_CHECK(o.frames % (k * tl) == 0,
              "--frames {} is not a multiple of the model's chunk ({} latent x {} frames = {} "
              "frames)",
              o.frames, k, tl, k * tl);
    QVG_CHECK(o.context % k == 0, "--context {} is not a multiple of the chunk ({} latents)",
              o.context, k);
    // Every policy is checked now (groups, centroids against the span), not mid-run.
    for (const auto& e : caches) policy_for(e, o, c, e.window_frames > 0 ? e.window_frames : 1);

    world::WorldConfig wc;
    wc.seed = o.world_seed;
    wc.map_size = o.map_size;
    std::cerr << fmt::format("eval: generating the world (seed {}, {} m)\n", o.world_seed,
                             o.map_size);
    const world::World world(wc);
    world::RevisitOptions revisit_options;
    revisit_options.max_distance_m = o.revisit_distance_m;
    revisit_options.max_angle_deg = o.revisit_angle_deg;
    revisit_options.min_gap_frames = o.revisit_gap_frames;

    // The walks' ground truth, rendered on all threads (the world is only read).
    const auto render_start = std::chrono::steady_clock::now();
    std::vector<TrajectoryResult> results(o.trajectories.size() * static_cast<size_t>(o.walks));
    each_in_parallel(static_cast<int64_t>(results.size()), at::get_num_threads(), [&](int64_t at) {
        const auto i = static_cast<size_t>(at);
        TrajectoryResult& t = results[i];
        EvalTrajectoryRequest request;
        t.kind = o.trajectories[i % o.trajectories.size()];
        t.walk = static_cast<int>(i / o.trajectories.size());
        request.name = t.kind;
        request.seed = core::Rng::mix(o.walk_seed, i);
        request.context_latents = o.context;
        request.frames = o.frames;
        request.loop_side = o.loop_side;
        request.image_size = static_cast<int>(c.image_size);
        request.frames_per_latent = static_cast<int>(tl);
        request.chunk_latents = static_cast<int>(k);
        t.trajectory = make_eval_trajectory(world, request);
        if (o.walks > 1) t.trajectory.name = fmt::format("{} #{}", t.kind, t.walk + 1);
        t.noise_seed = core::Rng::mix(o.seed, i);
        t.revisits = world::find_revisits(world, t.trajectory.clip.frame_poses, revisit_options,
                                          t.trajectory.context_frames());
    });
    int64_t total_chunks = 0;
    // Walks of equal length run side by side, --batch at a time, in the order of the first.
    std::vector<std::vector<TrajectoryResult*>> groups;
    for (auto& t : results) {
        const int64_t chunks = t.trajectory.generated_latents / k;
        const size_t windows = t.revisits.empty() ? 0 : o.windows.size();
        total_chunks += chunks * static_cast<int64_t>(caches.size() * (o.ahead ? 2 : 1) + windows);
        auto fits = [&](const std::vector<TrajectoryResult*>& g) {
            const EvalTrajectory& a = g.front()->trajectory;
            return static_cast<int>(g.size()) < o.batch &&
                   a.context_latents == t.trajectory.context_latents &&
                   a.generated_latents == t.trajectory.generated_latents;
        };
        auto open = std::find_if(groups.begin(), groups.end(), fits);
        if (open == groups.end()) {
            groups.push_back({&t});
        } else {
            open->push_back(&t);
        }
    }
    std::cerr << fmt::format("eval: {} walks rendered in {:.1f} s, {} batch(es)\n", results.size(),
                             ms_since(render_start) / 1000.0, groups.size());

    std::cerr << fmt::format("eval: {} on {}, {} trajectories x {} caches{}, {} denoising steps\n",
                             o.model, core::device_name(device), results.size(), caches.size(),
                             o.ahead ? " (rollout + 1 chunk ahead)" : "",
                             o.steps > 0 ? o.steps : c.sample_steps);
    Progress progress("eval", total_chunks);
    int64_t done = 0;
    std::string detail;
    auto report = [&] {
        ++done;
        if (progress.interactive()) progress.update(done, detail);
    };
    const Evaluator evaluator(model, o, report);
    auto finished = [&](const std::string& what) {
        if (!progress.interactive()) progress.update(done, what);
    };

    for (const std::vector<TrajectoryResult*>& group : groups) {
        const std::vector<const TrajectoryResult*> walks(group.begin(), group.end());
        const EvalTrajectory& tr = group.front()->trajectory;
        const std::string name =
            group.size() == 1 ? tr.name : fmt::format("{} walks ({} ...)", group.size(), tr.name);
        for (TrajectoryResult* t : group) t->runs.resize(caches.size());
        score_baselines(model, group, k);

        int64_t budget = 0;           // bytes of the budget reference at the end, per walk
        double bf16_frame_bytes = 0;  // bytes one frame takes in the BF16 cache, as held
        auto runs_of = [&](size_t index) {
            std::vector<Run*> runs;
            for (TrajectoryResult* t : group) runs.push_back(&t->runs[index]);
            return runs;
        };
        auto run_entry = [&](size_t index) {
            const EvalCache& e = caches[index];
            int64_t window = e.window_frames;
            if (e.budget_matched()) {
                const int64_t sink = e.history == EvalHistory::kSinkWindow ? o.context : 0;
                window = std::max<int64_t>(
                    1, static_cast<int64_t>(static_cast<double>(budget) / bf16_frame_bytes) - sink);
            }
            const std::vector<Run*> runs = runs_of(index);
            for (Run* run : runs) {
                run->cache = e.name;
                run->policy = policy_for(e, o, c, window);
                run->label = label_of(e, run->policy);
            }
            const Run& run = *runs.front();
            detail = fmt::format("{} / {}: rollout", name, run.label);
            evaluator.run(walks, runs, Evaluator::Mode::kRollout);
            finished(fmt::format(
                "{} / {}: rollout PSNR {:.2f} dB, {:.1f} frames/s", name, run.label,
                mean_psnr(runs, false),
                static_cast<double>(run.truth.psnr.size()) / (run.rollout_ms / 1000.0)));
            if (o.ahead) {
                detail = fmt::format("{} / {}: 1 chunk ahead", name, run.label);
                evaluator.run(walks, runs, Evaluator::Mode::kAhead);
                finished(fmt::format("{} / {}: 1 chunk ahead PSNR {:.2f} dB", name, run.label,
                                     mean_psnr(runs, true)));
            }
            if (e.is_bf16_full()) {
                bf16_frame_bytes =
                    static_cast<double>(run.stats.bytes) / static_cast<double>(run.stats.frames);
            }
            if (e.is_budget_reference() && budget == 0) budget = run.stats.bytes;
        };
        // BF16 first (the others are compared with its output), budget-matched windows last.
        for (size_t i = 0; i < caches.size(); ++i) {
            if (!caches[i].budget_matched()) run_entry(i);
        }
        for (size_t i = 0; i < caches.size(); ++i) {
            if (caches[i].budget_matched()) run_entry(i);
        }
        for (TrajectoryResult* t : group) {
            for (auto& run : t->runs) {
                compare_with_bf16(t->runs.front(), t->trajectory, run);
                score_revisits(*t, k, run);
            }
        }
        // Windows for the revisit table, over the walks that revisit.
        std::vector<TrajectoryResult*> revisiting;
        for (TrajectoryResult* t : group) {
            if (!t->revisits.empty()) revisiting.push_back(t);
        }
        if (!revisiting.empty()) {
            const std::vector<const TrajectoryResult*> rwalks(revisiting.begin(), revisiting.end());
            for (int64_t w : o.windows) {
                std::vector<Run> runs(revisiting.size());
                std::vector<Run*> ptrs;
                for (Run& run : runs) {
                    run.cache = fmt::format("window-{}", w);
                    run.policy = policy_for(parse_eval_cache(run.cache), o, c, w);
                    run.label = fmt::format("BF16 window {}", w);
                    ptrs.push_back(&run);
                }
                detail = fmt::format("{} / {}: rollout", name, runs.front().label);
                evaluator.run(rwalks, ptrs, Evaluator::Mode::kRollout);
                finished(fmt::format("{} / {}: rollout PSNR {:.2f} dB", name, runs.front().label,
                                     mean_psnr(ptrs, false)));
                for (size_t j = 0; j < revisiting.size(); ++j) {
                    TrajectoryResult& t = *revisiting[j];
                    Run& run = runs[j];
                    compare_with_bf16(t.runs.front(), t.trajectory, run);
                    score_revisits(t, k, run);
                    run.frames.clear();
                    t.history_runs.push_back(std::move(run));
                }
            }
        }
        for (TrajectoryResult* t : group) {
            for (auto& run : t->runs) {
                run.frames.clear();
                run.frames.shrink_to_fit();
                run.ahead_frames.clear();
                run.ahead_frames.shrink_to_fit();
            }
        }
    }
    progress.finish();

    const std::vector<Summary> summary = summarize(results, caches);

    // (a) per trajectory, with the BF16 cache.
    Table per_trajectory({"trajectory", "frames", "revisit frames", "PSNR", "SSIM", "copy PSNR",
                          "1-ahead PSNR", "1-ahead SSIM", "1-ahead copy PSNR", "AE PSNR",
                          "frames/s"});
    for (const auto& t : results) {
        const Run& r = t.runs.front();
        per_trajectory.add(
            {t.trajectory.name, std::to_string(t.trajectory.generated_frames()),
             std::to_string(t.revisits.size()), fixed(mean(r.truth.psnr), 2),
             fixed(mean(r.truth.ssim), 3), fixed(mean(t.copy.psnr), 2),
             r.has_ahead ? fixed(mean(r.ahead.psnr), 2) : "-",
             r.has_ahead ? fixed(mean(r.ahead.ssim), 3) : "-", fixed(mean(t.ahead_copy.psnr), 2),
             fixed(mean(t.autoencoder.psnr), 2),
             fixed(static_cast<double>(r.truth.psnr.size()) / (r.rollout_ms / 1000.0), 1)});
    }
    // (a') with several walks per trajectory: their means, and the margins over copying.
    Table per_kind({"trajectory", "walks", "PSNR", "copy PSNR", "margin", "1-ahead PSNR",
                    "1-ahead copy PSNR", "1-ahead margin", "AE PSNR"});
    for (const std::string& kind : o.trajectories) {
        std::vector<double> psnr, copy, ahead, ahead_copy, ae;
        for (const auto& t : results) {
            if (t.kind != kind) continue;
            const Run& r = t.runs.front();
            psnr.push_back(mean(r.truth.psnr));
            copy.push_back(mean(t.copy.psnr));
            if (r.has_ahead) ahead.push_back(mean(r.ahead.psnr));
            ahead_copy.push_back(mean(t.ahead_copy.psnr));
            ae.push_back(mean(t.autoencoder.psnr));
        }
        const bool has_ahead = !ahead.empty();
        per_kind.add({kind, std::to_string(psnr.size()), fixed(mean(psnr), 2), fixed(mean(copy), 2),
                      fmt::format("{:+.2f}", mean(psnr) - mean(copy)),
                      has_ahead ? fixed(mean(ahead), 2) : "-", fixed(mean(ahead_copy), 2),
                      has_ahead ? fmt::format("{:+.2f}", mean(ahead) - mean(ahead_copy)) : "-",
                      fixed(mean(ae), 2)});
    }
    // (b) the quality / memory Pareto table over all trajectories.
    Table pareto({"cache", "KV", "BF16-equiv", "ratio", "PSNR", "SSIM", "detail", "PSNR vs BF16",
                  "1-ahead PSNR", "1-ahead vs BF16", "ms/chunk", "frames/s", "front"});
    for (const auto& s : summary) {
        pareto.add({s.label, human_bytes(s.kv_bytes), human_bytes(s.bf16_bytes),
                    fmt::format("{:.2f}x", s.bf16_bytes / s.kv_bytes), fixed(s.psnr, 2),
                    fixed(s.ssim, 3), fixed(s.detail, 3), fixed(s.psnr_vs_bf16, 2),
                    fixed(s.ahead_psnr, 2), fixed(s.ahead_psnr_vs_bf16, 2),
                    fixed(s.ms_per_chunk, 1), fixed(s.fps, 1), s.pareto ? "*" : ""});
    }
    // (c) revisit scores against the history kept.
    Table revisit({"trajectory", "cache", "latents kept", "KV", "revisit frames", "remembered",
                   "revisit PSNR", "revisit SSIM", "other PSNR"});
    bool any_revisit = false;
    for (const auto& t : results) {
        if (t.revisits.empty()) continue;
        any_revisit = true;
        std::vector<const Run*> rows;
        for (const auto& r : t.runs) rows.push_back(&r);
        for (const auto& r : t.history_runs) rows.push_back(&r);
        for (const Run* r : rows) {
            revisit.add({t.trajectory.name, r->label, std::to_string(r->stats.frames),
                         human_bytes(static_cast<double>(r->stats.bytes)),
                         std::to_string(r->revisit.frames),
                         fmt::format("{:.0f}%", 100.0 * r->revisit.remembered /
                                                    std::max(1, r->revisit.frames)),
                         fixed(r->revisit.psnr, 2), fixed(r->revisit.ssim, 3),
                         fixed(r->revisit.other_psnr, 2)});
        }
    }

    std::cout << fmt::format(
                     "qvg eval: {} ({}x{}, {} frames per latent, chunk {}), {}, commit {}\n",
                     o.model, c.image_size, c.image_size, tl, k, core::device_name(device),
                     o.commit)
              << fmt::format(
                     "context {} latent(s) of ground truth; QVG span {} latents, {} centroids; "
                     "PSNR capped at {:.0f} dB\n\n",
                     o.context, o.span_frames, o.centroids, world::kMaxPsnrDb)
              << "(a) trajectories, BF16 cache (copy: the last ground-truth frame the model saw; "
                 "AE: the ground truth through the autoencoder, the ceiling of a latent model)\n"
              << per_trajectory.str() << "\n";
    if (o.walks > 1) {
        std::cout << fmt::format(
                         "(a') means over {} walks per trajectory, each from its own start pose "
                         "with its own sampler noise (margin: over copying)\n",
                         o.walks)
                  << per_kind.str() << "\n";
    }
    std::cout
        << "(b) quality / memory, all trajectories (KV: mean at the end of a rollout, as "
           "held; detail: the rollouts' fine structure over the ground truth's, below 1 = blurred; "
           "* = Pareto front: no row with fewer or equal bytes has a higher PSNR)\n"
        << pareto.str();
    if (model.dit().dtype() != at::kBFloat16) {
        std::cout << fmt::format(
            "note: the model runs in {}; its caches hold unencoded frames (BF16 rows, tails and "
            "sinks) as BF16\n",
            c10::toString(model.dit().dtype()));
    }
    std::cout << "\n";
    if (any_revisit) {
        std::cout << fmt::format(
                         "(c) revisits (within {} m and {} degrees of a frame at least {} frames "
                         "earlier) against the history kept; remembered: generated while a "
                         "sighting was in the cache\n",
                         o.revisit_distance_m, o.revisit_angle_deg, o.revisit_gap_frames)
                  << revisit.str();
    } else {
        std::cout << "(c) no trajectory revisits a place (try square or out-and-back)\n";
    }

    if (!o.out.empty()) {
        json trajectories = json::array();
        for (const auto& t : results) {
            const EvalTrajectory& tr = t.trajectory;
            json revisits = json::array();
            for (const auto& r : t.revisits) {
                revisits.push_back({{"generated_frame", r.frame - tr.context_frames()},
                                    {"clip_frame", r.frame},
                                    {"first_seen_clip_frame", r.first_seen},
                                    {"last_seen_clip_frame", r.last_seen},
                                    {"distance_m", r.distance_m},
                                    {"angle_deg", r.angle_deg}});
            }
            json runs = json::array(), history = json::array();
            for (const auto& r : t.runs) runs.push_back(run_json(r));
            for (const auto& r : t.history_runs) history.push_back(run_json(r));
            trajectories.push_back({{"name", tr.name},
                                    {"trajectory", t.kind},
                                    {"walk", t.walk},
                                    {"context_latents", tr.context_latents},
                                    {"context_frames", tr.context_frames()},
                                    {"generated_latents", tr.generated_latents},
                                    {"generated_frames", tr.generated_frames()},
                                    {"start_pose", pose_json(tr.clip.start)},
                                    {"labels", tr.clip.labels},
                                    {"noise_seed", t.noise_seed},
                                    {"revisit_frames", revisits},
                                    {"copy", t.copy.to_json()},
                                    {"ahead_copy", t.ahead_copy.to_json()},
                                    {"autoencoder", t.autoencoder.to_json()},
                                    {"runs", runs},
                                    {"history_runs", history}});
        }
        json rows = json::array();
        for (const auto& s : summary) {
            rows.push_back({{"cache", s.cache},
                            {"label", s.label},
                            {"kv_bytes", s.kv_bytes},
                            {"kv_bf16_bytes", s.bf16_bytes},
                            {"kv_ratio", s.bf16_bytes / s.kv_bytes},
                            {"mean_psnr", number(s.psnr)},
                            {"mean_ssim", number(s.ssim)},
                            {"detail_ratio", number(s.detail)},
                            {"psnr_vs_bf16", number(s.psnr_vs_bf16)},
                            {"ahead_mean_psnr", number(s.ahead_psnr)},
                            {"ahead_psnr_vs_bf16", number(s.ahead_psnr_vs_bf16)},
                            {"ms_per_chunk", s.ms_per_chunk},
                            {"fps", s.fps},
                            {"pareto", s.pareto}});
        }
        const json report_json = {
            {"command", "eval"},
            {"commit", o.commit},
            {"model", o.model},
            {"model_config", json::parse(c.to_json())},
            {"model_dtype", c10::toString(model.dit().dtype())},
            {"device", device.str()},
            {"device_name", core::device_name(device)},
            {"threads", at::get_num_threads()},
            {"options",
             {{"world_seed", o.world_seed},
              {"map_size", o.map_size},
              {"seed", o.seed},
              {"walk_seed", o.walk_seed},
              {"walks", o.walks},
              {"batch", o.batch},
              {"context_latents", o.context},
              {"frames", o.frames},
              {"loop_side", o.loop_side},
              {"steps", o.steps},
              {"trajectories", o.trajectories},
              {"caches", o.caches},
              {"windows", o.windows},
              {"span_frames", o.span_frames},
              {"centroids", o.centroids},
              {"ahead", o.ahead}}},
            {"metrics",
             {{"psnr", "per frame over all RGB bytes, peak 255, capped (identical = cap)"},
              {"psnr_cap_db", world::kMaxPsnrDb},
              {"ssim",
               "per frame, 11x11 Gaussian window sigma 1.5, valid positions, C1 = "
               "(0.01*255)^2, C2 = (0.03*255)^2, mean of R, G and B"},
              {"psnr_vs_bf16",
               "per frame, and video_psnr_vs_bf16 from the MSE over all "
               "generated frames; under ahead, each chunk predicted from the ground truth "
               "against the BF16 cache's prediction with the same noise"},
              {"kv_bytes", "held by the cache at the end of the rollout, every byte counted"},
              {"batch",
               "with options.batch above 1 the walks of a batch ran side by side: bytes are "
               "per walk, the cache's error telemetry (kv) is the batch's, and the times "
               "(rollout_ms, chunk_ms, ms_per_chunk, fps) are the batch's divided among its "
               "walks"}}},
            {"revisit_definition",
             {{"max_distance_m", o.revisit_distance_m},
              {"max_angle_deg", o.revisit_angle_deg},
              {"min_gap_frames", o.revisit_gap_frames},
              {"rule",
               "a generated frame within max_distance_m (map position) and "
               "max_angle_deg (between view directions) of a frame at least "
               "min_gap_frames earlier, context included"}}},
            {"budget_reference", kBudgetReference},
            {"summary", rows},
            {"trajectories", trajectories}};
        write_json_file(o.out, report_json, "--out");
        std::cout << "\nwrote " << o.out << "\n";
    }
    return 0;
}

const Registrar kRegister([](CLI::App& app) {
    auto o = std::make_shared<EvalOptions>();
    CLI::App* sub = app.add_subcommand(
        "eval", "Score the world model against the ground-truth world, per KV cache");
    sub->add_option("--model", o->model, "world model (.safetensors from qvg train)")->required();
    sub->add_option("--out", o->out, "JSON report to write");
    sub->add_option("--device", o->device, "auto, cpu or cuda");
    sub->add_option("--threads", o->threads, "intra-op threads (0 = LibTorch's default)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--world-seed", o->world_seed, "procedural world seed");
    sub->add_option("--map-size", o->map_size, "world map size in metres (power of two)");
    sub->add_option("--seed", o->seed, "sampler noise and codec seed");
    sub->add_option("--walk-seed", o->walk_seed, "start poses and the random walk");
    sub->add_option("--context", o->context, "ground-truth latents before generation");
    sub->add_option(
        "--frames", o->frames,
        "generated frames per rollout of straight, turn, random, back-and-forth and return "
        "(a multiple of the chunk); square and out-and-back run one whole loop");
    sub->add_option("--loop-side", o->loop_side,
                    "latents walked per side of the square and per leg of out-and-back");
    sub->add_option("--steps", o->steps, "denoising steps per chunk (0 = the model's)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--trajectories", o->trajectories,
                    "straight, turn, square, out-and-back, random, back-and-forth, return (the "
                    "way out seen as ground truth, the way back generated)")
        ->delimiter(',');
    sub->add_option("--walks", o->walks,
                    "walks per trajectory, each from its own start pose with its own sampler "
                    "noise; tables (a') and (b) average over them")
        ->check(CLI::Range(1, 1024));
    sub->add_option("--batch", o->batch,
                    "walks run side by side as one batch, those of equal length (a GPU runs "
                    "many at little more than the cost of one). Each walk keeps its own noise "
                    "and its own k-means draws; the batch's matrix shapes change the rounding, "
                    "and a rollout can amplify that. Times and cache error telemetry are then "
                    "the batch's (times shared among its walks)")
        ->check(CLI::Range(1, 1024));
    sub->add_option("--caches", o->caches,
                    "cache configurations: <codec>[-int2|-int4][-g<G>][-s<S>][-c<C>] (codec bf16, "
                    "fp8, rtn, qvg, kivi, quarot), window[-N], sink-window[-N]")
        ->delimiter(',');
    sub->add_option("--windows", o->windows,
                    "BF16 sliding windows (latents) for the revisit table, on trajectories "
                    "that revisit")
        ->delimiter(',');
    sub->add_option("--span", o->span_frames, "latent frames per quantized span");
    sub->add_option("--centroids", o->centroids, "QVG centroids per stage (unless -c<C>)")
        ->check(CLI::Range(1, 256));
    sub->add_flag("!--no-ahead", o->ahead, "skip the 1-chunk-ahead predictions");
    sub->add_option("--revisit-distance", o->revisit_distance_m,
                    "revisit: metres from an earlier frame's position");
    sub->add_option("--revisit-angle", o->revisit_angle_deg,
                    "revisit: degrees between the view directions");
    sub->add_option("--revisit-gap", o->revisit_gap_frames,
                    "revisit: frames since the earlier frame, at least");
    sub->add_option("--commit", o->commit, "commit to record in the report");
    on_selected(sub, [o] {
        try {
            return run_eval(*o);
        } catch (const c10::Error& e) {
            const std::string what = e.what_without_backtrace();
            core::fail("{}", what.substr(0, what.find('\n')));
        }
    });
});

}  // namespace
}  // namespace qvg::cli
