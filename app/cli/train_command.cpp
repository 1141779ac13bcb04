// qvg train: trains the built-in world model on clips of the procedural world made on the fly.
// Phase 1 trains the latent autoencoder; phase 2 freezes it, measures the latent statistics and
// trains the DiT with flow matching under the block protocol (world_model.h). Everything needed
// to continue lives in --out: the weights (world_model.safetensors, also the finished model), the
// optimizer state (optimizer_ae.pt / optimizer_dit.pt), train_state.json (phase, steps, seeds,
// config) and loss.csv. Every batch and every noise draw depends only on (seed, phase, step),
// so a run cut into pieces by --time-limit-s and --resume gives the same losses as one run.
//
// The device is never waited for inside a step: the next step's clips are rendered, turned into
// tensors and its random numbers drawn on a data thread while the device works (pinned memory
// and asynchronous copies on CUDA), and the logged numbers stay on the device until every
// --log-every steps (and at checkpoints), when one wait fetches them all. loss.csv still has a
// row per step; its step_ms is the mean over the steps fetched together.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <numbers>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/rng.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/world_model.h"
#include "world_data.h"

namespace qvg::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TrainOptions {
    std::string out;
    std::string device = "auto";
    std::string preset = "small";
    int64_t steps = 20000;      // DiT steps in total
    int64_t ae_steps = 3000;    // autoencoder steps in total
    int64_t decoder_steps = 0;  // decoder fine-tuning steps in total, after the DiT
    double decoder_lr = 5e-4;
    int64_t decoder_width = 0;  // a new decoder of this width (0: keep the run's)
    int64_t batch = 32;         // clips per DiT step
    int64_t ae_batch = 32;      // latent frames (of 1-latent clips) per autoencoder step
    int clip_latents = 0;       // latent frames per DiT training clip; 0 = the run's (new: 16)
    int reuse = 0;              // DiT steps each rendered clip serves; 0 = the run's (new: 1)
    double own_history = -1;    // share of DiT clips on their own history; < 0 = the run's (new: 0)
    double own_history_sigma = -1;  // its prediction's noise level; < 0 = the run's (new: 0.5)
    double lr = 3e-4;
    double ae_lr = 1e-3;
    int64_t warmup = 200;
    double weight_decay = 0.01;
    double clip_grad = 1.0;
    bool bf16 = false;
    bool resume = false;
    uint64_t seed = 0;
    uint64_t world_seed = 1;
    int map_size = 1024;
    int64_t save_every = 500;
    int64_t log_every = 10;
    double time_limit_s = 0;  // 0 = none
    int64_t run_steps = 0;    // steps in this invocation (both phases); 0 = no limit
    int data_threads = 0;     // 0 = all hardware threads
    int threads = 0;          // intra-op threads; 0 = LibTorch's default
};

struct TrainState {
    std::string phase = "ae";  // "ae", "dit" or "done"
    int64_t ae_step = 0;
    int64_t dit_step = 0;
    int64_t decoder_step = 0;
    bool latent_stats = false;
    uint64_t seed = 0;
    uint64_t world_seed = 1;
    int map_size = 1024;
    int clip_latents = 16;
    int reuse = 1;
    core::OwnHistory own_history;  // scheduled sampling of the DiT's history (share 0: none)
    std::string config;            // WorldModelConfig JSON
};

// Seeds of the per-step streams: (seed, purpose, step) -> seed.
enum class Stream : uint64_t {
    kAeData = 1,
    kAeNoise,
    kStatsData,
    kDitData,
    kDitNoise,
    kDecoderData,
    kDecoderNoise
};

uint64_t stream_seed(uint64_t seed, Stream stream, int64_t step) {
    return core::Rng::mix(core::Rng::mix(seed, static_cast<uint64_t>(stream)),
                          static_cast<uint64_t>(step));
}

void write_state(const fs::path& path, const TrainState& s) {
    json j;
    j["version"] = 1;
    j["phase"] = s.phase;
    j["ae_step"] = s.ae_step;
    j["dit_step"] = s.dit_step;
    j["decoder_step"] = s.decoder_step;
    j["latent_stats"] = s.latent_stats;
    j["seed"] = s.seed;
    j["world_seed"] = s.world_seed;
    j["map_size"] = s.map_size;
    j["clip_latents"] = s.clip_latents;
    j["reuse"] = s.reuse;
    j["own_history"] = s.own_history.share;
    j["own_history_sigma"] = s.own_history.sigma;
    j["config"] = json::parse(s.config);
    const fs::path tmp = path.string() + ".tmp";
    {
        std::ofstream f(tmp);
        f << j.dump(2) << "\n";
        if (!f) core::fail("cannot write {}", tmp.string());
    }
    fs::rename(tmp, path);
}

TrainState read_state(const fs::path& path) {
    std::ifstream f(path);
    if (!f) core::fail("cannot read {}", path.string());
    TrainState s;
    try {
        const json j = json::parse(f);
        s.phase = j.at("phase").get<std::string>();
        s.ae_step = j.at("ae_step").get<int64_t>();
        s.dit_step = j.at("dit_step").get<int64_t>();
        s.decoder_step = j.value("decoder_step", int64_t{0});  // absent before the phase existed
        s.latent_stats = j.at("latent_stats").get<bool>();
        s.seed = j.at("seed").get<uint64_t>();
        s.world_seed = j.at("world_seed").get<uint64_t>();
        s.map_size = j.at("map_size").get<int>();
        s.clip_latents = j.at("clip_latents").get<int>();
        s.reuse = j.value("reuse", 1);                      // absent in runs from before the option
        s.own_history.share = j.value("own_history", 0.0);  // likewise
        s.own_history.sigma = j.value("own_history_sigma", 0.5);
        s.config = j.at("config").dump();
    } catch (const json::exception& e) {
        core::fail("{}: malformed training state: {}", path.string(), e.what());
    }
    QVG_CHECK(s.phase == "ae" || s.phase == "dit" || s.phase == "decoder" || s.phase == "done",
              "{}: unknown phase '{}'", path.string(), s.phase);
    return s;
}

// Linear warmup, then cosine decay to a tenth of the peak at `total` steps.
double learning_rate(double peak, int64_t step, int64_t total, int64_t warmup) {
    if (warmup > 0 && step < warmup) {
        return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
    }
    const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
    const double progress = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

void set_lr(torch::optim::AdamW& opt, double lr) {
    for (auto& group : opt.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
}

// Loads AdamW state and moves it to its parameters' devices: a run saved on one device (the
// decoder phase of a CPU run) resumes on another.
void load_optimizer(torch::optim::AdamW& opt, const fs::path& path) {
    torch::load(opt, path.string());
    for (auto& group : opt.param_groups()) {
        for (const at::Tensor& p : group.params()) {
            auto it = opt.state().find(p.unsafeGetTensorImpl());
            if (it == opt.state().end()) continue;
            auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
            st.exp_avg(st.exp_avg().to(p.device()));
            st.exp_avg_sq(st.exp_avg_sq().to(p.device()));
            if (st.max_exp_avg_sq().defined())
                st.max_exp_avg_sq(st.max_exp_avg_sq().to(p.device()));
        }
    }
}

void save_optimizer(const torch::optim::AdamW& opt, const fs::path& path) {
    const fs::path tmp = path.string() + ".tmp";
    torch::save(opt, tmp.string());
    fs::rename(tmp, path);
}

// [N, 3T, H, W] for the clips' frames, clip after clip.
at::Tensor clips_video(const std::vector<world::Clip>& clips) {
    std::vector<at::Tensor> parts;
    for (const world::Clip& c : clips) {
        parts.push_back(core::video_from_rgb8(c.frames.data(), c.frame_count(), c.height, c.width,
                                              c.frames_per_latent));
    }
    return at::cat(parts);
}

at::Tensor clips_labels(const std::vector<world::Clip>& clips) {
    std::vector<int64_t> values;
    for (const world::Clip& c : clips)
        values.insert(values.end(), c.labels.begin(), c.labels.end());
    return at::tensor(values, at::kLong).view({static_cast<int64_t>(clips.size()), -1});
}

// One step's inputs, made on a data thread, on the CPU (pinned when training on CUDA).
struct Batch {
    at::Tensor video;               // [N, 3T, H, W]
    at::Tensor labels;              // [clips, latents]
    at::Tensor ae_noise;            // autoencoder steps: [N, C, h, w]
    core::FlowMatchingNoise noise;  // DiT steps
};

enum class BatchKind { kAutoencoder, kStats, kDit, kDecoder };

// What the data thread copies to the device (pinned) or leaves as is (CPU training).
at::Tensor uploadable(const at::Tensor& t, bool pin) {
    return pin && t.defined() ? t.pin_memory() : t;
}
at::Tensor upload(const at::Tensor& t, at::Device device) {
    return t.defined() ? t.to(device, /*non_blocking=*/true) : t;
}

// torch::nn::utils::clip_grad_norm_ without its wait for the norm: returns the total norm as a
// device scalar.
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm) {
    std::vector<at::Tensor> grads, norms;
    for (const at::Tensor& p : parameters) {
        if (p.grad().defined()) grads.push_back(p.grad());
    }
    if (grads.empty()) return at::zeros({}, parameters.front().options());
    for (const at::Tensor& g : grads) norms.push_back(g.norm(2));
    at::Tensor total = norms.size() == 1 ? norms[0] : at::stack(norms).norm(2);
    at::Tensor coef = at::clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
    at::NoGradGuard no_grad;
    for (at::Tensor& g : grads) g.mul_(coef);
    return total;
}

class Trainer {
  public:
    explicit Trainer(const TrainOptions& o) : o_(o), start_(std::chrono::steady_clock::now()) {}

    int run();

  private:
    // Whether the numbers of `step` are printed (and so fetched from the device now).
    bool log_due(int64_t step) const { return step % o_.log_every == 0 || step == 1; }
    // Whether this invocation should checkpoint and stop after the step just done.
    bool should_stop(double step_ms) {
        ++steps_run_;
        if (o_.run_steps > 0 && steps_run_ >= o_.run_steps) return true;
        if (o_.time_limit_s <= 0) return false;
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        // Leave room for one more step and the checkpoint.
        return elapsed + 2.0 * step_ms / 1000.0 + 5.0 > o_.time_limit_s;
    }
    void checkpoint(const core::WorldModel& model, const torch::optim::AdamW* opt,
                    const std::string& opt_name);
    // Queues a step's numbers (device scalars; mse undefined for the DiT) for the next flush.
    void record(const std::string& phase, int64_t step, const at::Tensor& loss, double lr,
                const at::Tensor& grad_norm, const at::Tensor& mse);
    // Fetches the queued numbers in one wait, writes their loss.csv rows and prints the ones
    // due. Returns the mean milliseconds per step since the previous flush.
    double flush();
    // After a recorded step: logs when due, checkpoints when due, and returns true when this
    // invocation stops here (time or step budget) before the phase is complete.
    bool end_step(const core::WorldModel& model, const torch::optim::AdamW& opt,
                  const std::string& opt_name, const char* phase, int64_t done, int64_t total,
                  std::future<Batch>& next);
    std::future<Batch> prepare(BatchKind kind, int64_t step, int latents, int64_t count,
                               bool pin) const;
    // The autoencoder (kBoth) or its decoder under the frozen encoder (kDecoder), from the
    // run's step of that phase to its total. Returns true when this invocation stops first.
    bool autoencoder_phase(core::WorldModel& model, at::Device device, core::AutoencoderPart part);
    // --decoder-width: a freshly initialised decoder of that width takes the place of the run's
    // (the encoder, the latent statistics and the DiT stay), and decoder fine-tuning starts
    // again from step 0 with a new optimizer.
    void replace_decoder(std::unique_ptr<core::WorldModel>& model, at::Device device);

    TrainOptions o_;
    std::chrono::steady_clock::time_point start_;
    fs::path out_;
    TrainState state_;
    core::WorldModelConfig config_;
    std::unique_ptr<world::World> world_;
    std::ofstream csv_;
    int data_threads_ = 1;
    int64_t steps_run_ = 0;
    struct Row {
        std::string phase;
        int64_t step;
        double lr;
        at::Tensor loss, grad_norm, mse;
    };
    std::vector<Row> rows_;  // recorded, not yet flushed
    std::chrono::steady_clock::time_point window_start_ = std::chrono::steady_clock::now();
    double step_ms_ = 0;  // mean of the last flushed window
    // DiT clips by the step that rendered them (--reuse > 1). Only the one batch being prepared
    // touches it (the next is requested after the previous one was taken).
    std::shared_ptr<std::map<int64_t, std::vector<world::Clip>>> dit_clips_ =
        std::make_shared<std::map<int64_t, std::vector<world::Clip>>>();
    double wait_ms_ = 0;  // time blocked on the data thread in the current window
    // Waits for a prepared batch, counting the time the step stood still for it.
    Batch take(std::future<Batch>& f) {
        const auto t0 = std::chrono::steady_clock::now();
        Batch b = f.get();
        wait_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count();
        return b;
    }
};

std::future<Batch> Trainer::prepare(BatchKind kind, int64_t step, int latents, int64_t count,
                                    bool pin) const {
    ClipRequest request;
    request.latents = latents;
    request.image_size = static_cast<int>(config_.image_size);
    request.frames_per_latent = static_cast<int>(config_.frames_per_latent);
    const Stream data = kind == BatchKind::kAutoencoder ? Stream::kAeData
                        : kind == BatchKind::kDecoder   ? Stream::kDecoderData
                        : kind == BatchKind::kStats     ? Stream::kStatsData
                                                        : Stream::kDitData;
    const uint64_t base = stream_seed(state_.seed, data, step);
    const uint64_t noise_seed = stream_seed(state_.seed,
                                            kind == BatchKind::kAutoencoder ? Stream::kAeNoise
                                            : kind == BatchKind::kDecoder   ? Stream::kDecoderNoise
                                                                            : Stream::kDitNoise,
                                            step);
    const world::World* world = world_.get();
    const int threads = data_threads_;
    const core::WorldModelConfig config = config_;
    const int reuse = kind == BatchKind::kDit ? state_.reuse : 1;
    const uint64_t seed = state_.seed;
    const core::OwnHistory own_history = state_.own_history;
    auto pool = dit_clips_;
    return std::async(std::launch::async, [=] {
        std::vector<world::Clip> clips;
        if (reuse == 1) {
            clips = make_world_clips(*world, request, base, static_cast<int>(count), threads);
        } else {
            // Step s renders ceil(count / reuse) clips of its own and fills the batch with the
            // clips rendered by steps s - 1, s - 2, ... (each clip serves `reuse` steps, under
            // new noise each time). Still a function of (seed, step) only: a resumed run renders
            // the earlier steps' clips again.
            const int fresh = static_cast<int>((count + reuse - 1) / reuse);
            for (int j = 0; j < reuse && static_cast<int64_t>(clips.size()) < count; ++j) {
                const int64_t s = step - j;
                auto it = pool->find(s);
                if (it == pool->end()) {
                    it = pool->emplace(s,
                                       make_world_clips(*world, request, stream_seed(seed, data, s),
                                                        fresh, threads))
                             .first;
                }
                for (const world::Clip& c : it->second) {
                    if (static_cast<int64_t>(clips.size()) < count) clips.push_back(c);
                }
            }
            pool->erase(pool->begin(), pool->lower_bound(step - reuse + 2));
        }
        Batch b;
        b.video = uploadable(clips_video(clips), pin);
        b.labels = uploadable(clips_labels(clips), pin);
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(noise_seed);
        const int64_t ls = config.latent_size(), c = config.latent_channels;
        if (kind == BatchKind::kAutoencoder || kind == BatchKind::kDecoder) {
            b.ae_noise =
                uploadable(core::draw_autoencoder_noise(config, count * latents, gen), pin);
        } else if (kind == BatchKind::kDit) {
            core::FlowMatchingNoise n = core::draw_flow_matching_noise(
                config, {count, latents, c, ls, ls}, gen, own_history);
            for (at::Tensor* t : {&n.sigma, &n.noise, &n.context_sigma, &n.context_noise,
                                  &n.own_history, &n.own_history_noise}) {
                *t = uploadable(*t, pin);
            }
            b.noise = std::move(n);
        }
        return b;
    });
}

bool Trainer::end_step(const core::WorldModel& model, const torch::optim::AdamW& opt,
                       const std::string& opt_name, const char* phase, int64_t done, int64_t total,
                       std::future<Batch>& next) {
    const double ms = log_due(done) ? flush() : step_ms_;
    const bool stop = should_stop(ms);
    if (done % o_.save_every == 0 || stop || done == total) checkpoint(model, &opt, opt_name);
    if (!stop || done >= total) return false;
    if (next.valid()) next.wait();
    std::cout << fmt::format("stopped at {} step {}; continue with --resume", phase, done)
              << std::endl;
    return true;
}

void Trainer::checkpoint(const core::WorldModel& model, const torch::optim::AdamW* opt,
                         const std::string& opt_name) {
    flush();
    model.save(out_ / "world_model.safetensors",
               {{"qvg.train_ae_step", std::to_string(state_.ae_step)},
                {"qvg.train_dit_step", std::to_string(state_.dit_step)},
                {"qvg.train_decoder_step", std::to_string(state_.decoder_step)},
                // The world it learnt, for the viewer's ground truth.
                {"qvg.world_seed", std::to_string(state_.world_seed)},
                {"qvg.map_size", std::to_string(state_.map_size)},
                // The longest history it learnt: clips of this many latents (the viewer
                // bounds its cache to one less).
                {"qvg.clip_latents", std::to_string(state_.clip_latents)}});
    if (opt != nullptr) save_optimizer(*opt, out_ / opt_name);
    write_state(out_ / "train_state.json", state_);
    csv_.flush();
    window_start_ = std::chrono::steady_clock::now();  // saving is not a step
}

void Trainer::record(const std::string& phase, int64_t step, const at::Tensor& loss, double lr,
                     const at::Tensor& grad_norm, const at::Tensor& mse) {
    rows_.push_back({phase, step, lr, loss.detach(), grad_norm.detach(),
                     mse.defined() ? mse.detach() : at::zeros_like(loss.detach())});
}

double Trainer::flush() {
    if (rows_.empty()) return step_ms_;
    std::vector<at::Tensor> values;
    for (const Row& r : rows_) {
        for (const at::Tensor* t : {&r.loss, &r.grad_norm, &r.mse}) {
            values.push_back(t->to(at::kDouble).reshape({}));
        }
    }
    const at::Tensor host = at::stack(values).cpu();  // the one wait
    const auto now = std::chrono::steady_clock::now();
    step_ms_ = std::chrono::duration<double, std::milli>(now - window_start_).count() /
               static_cast<double>(rows_.size());
    const double wait_ms = wait_ms_ / static_cast<double>(rows_.size());
    wait_ms_ = 0;
    window_start_ = now;
    const double* v = host.data_ptr<double>();
    for (size_t i = 0; i < rows_.size(); ++i) {
        const Row& r = rows_[i];
        const double loss = v[3 * i], grad_norm = v[3 * i + 1];
        const bool ae = r.phase == "ae" || r.phase == "decoder";
        const double psnr = ae ? core::AutoencoderLoss::psnr(v[3 * i + 2]) : 0.0;
        csv_ << fmt::format("{},{},{:.9g},{:.6g},{:.6g},{:.1f},{:.4f}\n", r.phase, r.step, loss,
                            r.lr, grad_norm, step_ms_, psnr);
        if (log_due(r.step)) {
            std::cout << fmt::format(
                             "{} step {:>6}  loss {:.5f}  lr {:.2e}  |g| {:.3f}  {:.0f} ms "
                             "({:.0f} waiting for data){}",
                             r.phase, r.step, loss, r.lr, grad_norm, step_ms_, wait_ms,
                             ae ? fmt::format("  psnr {:.2f} dB", psnr) : "")
                      << std::endl;
        }
    }
    rows_.clear();
    return step_ms_;
}

void Trainer::replace_decoder(std::unique_ptr<core::WorldModel>& model, at::Device device) {
    QVG_CHECK(o_.decoder_steps > 0,
              "--decoder-width {} replaces the decoder by an untrained one: give --decoder-steps",
              o_.decoder_width);
    core::WorldModelConfig next = config_;
    next.decoder_width = o_.decoder_width;
    core::TensorMap weights = model->weights();
    for (auto& [name, t] : core::init_world_model_weights(next, state_.seed + 1)) {
        if (name.rfind("ae.dec.", 0) == 0) weights[name] = t;
    }
    model.reset();
    model = std::make_unique<core::WorldModel>(next, weights, device, core::WanMode::kTraining);
    std::cout << fmt::format(
                     "decoder width {} -> {}: a new decoder, fine-tuned from step 0 (was "
                     "{})",
                     config_.decoder_channels(), next.decoder_channels(), state_.decoder_step)
              << std::endl;
    config_ = next;
    state_.config = config_.to_json();
    state_.decoder_step = 0;
    fs::remove(out_ / "optimizer_decoder.pt");
}

bool Trainer::autoencoder_phase(core::WorldModel& model, at::Device device,
                                core::AutoencoderPart part) {
    const bool decoder = part == core::AutoencoderPart::kDecoder;
    const std::vector<at::Tensor> params =
        decoder ? model.decoder_parameters() : model.autoencoder_parameters();
    const double peak = decoder ? o_.decoder_lr : o_.ae_lr;
    const int64_t total = decoder ? o_.decoder_steps : o_.ae_steps;
    int64_t& done = decoder ? state_.decoder_step : state_.ae_step;
    const std::string opt_name = decoder ? "optimizer_decoder.pt" : "optimizer_ae.pt";
    const BatchKind kind = decoder ? BatchKind::kDecoder : BatchKind::kAutoencoder;
    torch::optim::AdamW opt(params, torch::optim::AdamWOptions(peak).weight_decay(0.0));
    const fs::path opt_path = out_ / opt_name;
    if (o_.resume && done > 0 && fs::exists(opt_path)) load_optimizer(opt, opt_path);
    const bool pin = device.is_cuda();
    auto next = prepare(kind, done, 1, o_.ae_batch, pin);
    window_start_ = std::chrono::steady_clock::now();
    while (done < total) {
        const int64_t step = done;
        Batch batch = take(next);
        if (step + 1 < total) next = prepare(kind, step + 1, 1, o_.ae_batch, pin);
        const double lr = learning_rate(peak, step, total, o_.warmup);
        set_lr(opt, lr);
        opt.zero_grad();
        core::AutoencoderLoss loss = core::autoencoder_loss(model, upload(batch.video, device),
                                                            upload(batch.ae_noise, device), part);
        loss.loss.backward();
        const at::Tensor gn = clip_grad_norm(params, o_.clip_grad);
        opt.step();
        done = step + 1;
        record(decoder ? "decoder" : "ae", done, loss.loss, lr, gn, loss.mse);
        if (end_step(model, opt, opt_name, decoder ? "decoder" : "autoencoder", done, total,
                     next)) {
            return true;
        }
    }
    return false;
}

int Trainer::run() {
    const at::Device device = core::resolve_device(o_.device);
    if (o_.threads > 0) at::set_num_threads(o_.threads);
    data_threads_ = o_.data_threads > 0
                        ? o_.data_threads
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    out_ = o_.out;
    fs::create_directories(out_);
    const fs::path state_path = out_ / "train_state.json";
    const fs::path weights_path = out_ / "world_model.safetensors";

    std::unique_ptr<core::WorldModel> model;
    if (o_.resume) {
        QVG_CHECK(fs::exists(state_path) && fs::exists(weights_path),
                  "nothing to resume in {} (expected train_state.json and "
                  "world_model.safetensors)",
                  out_.string());
        state_ = read_state(state_path);
        config_ = core::WorldModelConfig::from_json(state_.config);
        auto file = core::SafetensorsFile::open(weights_path);
        const auto& meta = file->metadata();
        auto at_step = [&](const char* key) {
            auto it = meta.find(key);
            return it == meta.end() ? std::string("?") : it->second;
        };
        const std::string decoder_step = meta.count("qvg.train_decoder_step")
                                             ? at_step("qvg.train_decoder_step")
                                             : std::string("0");
        QVG_CHECK(at_step("qvg.train_ae_step") == std::to_string(state_.ae_step) &&
                      at_step("qvg.train_dit_step") == std::to_string(state_.dit_step) &&
                      decoder_step == std::to_string(state_.decoder_step),
                  "{}: the weights (steps {}/{}) do not belong to train_state.json (steps "
                  "{}/{}); the last checkpoint was cut off",
                  out_.string(), at_step("qvg.train_ae_step"), at_step("qvg.train_dit_step"),
                  state_.ae_step, state_.dit_step);
        file.reset();
        model = std::make_unique<core::WorldModel>(
            core::WorldModel::load(weights_path, device, core::WanMode::kTraining));
        std::cout << fmt::format("resuming {}: phase {}, autoencoder step {}, DiT step {}",
                                 out_.string(), state_.phase, state_.ae_step, state_.dit_step)
                  << std::endl;
    } else {
        QVG_CHECK(!fs::exists(state_path),
                  "{} already holds a training run; pass --resume to continue it or choose "
                  "another --out",
                  out_.string());
        QVG_CHECK(o_.preset == "small" || o_.preset == "tiny",
                  "unknown preset '{}' (expected small or tiny)", o_.preset);
        config_ =
            o_.preset == "tiny" ? core::WorldModelConfig::tiny() : core::WorldModelConfig::small();
        state_.seed = o_.seed;
        state_.world_seed = o_.world_seed;
        state_.map_size = o_.map_size;
        state_.clip_latents = o_.clip_latents == 0 ? 16 : o_.clip_latents;
        state_.reuse = o_.reuse == 0 ? 1 : o_.reuse;
        state_.config = config_.to_json();
        model = std::make_unique<core::WorldModel>(config_,
                                                   core::init_world_model_weights(config_, o_.seed),
                                                   device, core::WanMode::kTraining);
    }
    if (o_.decoder_width != 0 && o_.decoder_width != config_.decoder_channels()) {
        replace_decoder(model, device);
    }
    if (o_.clip_latents != 0 && o_.clip_latents != state_.clip_latents) {
        // Longer clips later in a run teach the model longer histories (context extension).
        std::cout << fmt::format("clip latents {} -> {} from DiT step {}", state_.clip_latents,
                                 o_.clip_latents, state_.dit_step)
                  << std::endl;
        state_.clip_latents = o_.clip_latents;
    }
    QVG_CHECK(state_.clip_latents > 0 && state_.clip_latents % config_.chunk_latents == 0,
              "clip latents {} must be a positive multiple of the chunk ({} latents)",
              state_.clip_latents, config_.chunk_latents);
    QVG_CHECK(o_.batch > 0 && o_.ae_batch > 0, "batch sizes must be positive");
    if (o_.reuse != 0 && o_.reuse != state_.reuse) {
        if (o_.resume) {
            std::cout << fmt::format("clip reuse {} -> {} from DiT step {}", state_.reuse, o_.reuse,
                                     state_.dit_step)
                      << std::endl;
        }
        state_.reuse = o_.reuse;
    }
    QVG_CHECK(state_.reuse >= 1 && state_.reuse <= o_.batch, "reuse {} must be in 1..batch ({})",
              state_.reuse, o_.batch);
    core::OwnHistory own = state_.own_history;
    if (o_.own_history >= 0) own.share = o_.own_history;
    if (o_.own_history_sigma >= 0) own.sigma = o_.own_history_sigma;
    own.validate();
    if (o_.resume &&
        (own.share != state_.own_history.share || own.sigma != state_.own_history.sigma)) {
        std::cout << fmt::format("own history {} at sigma {} -> {} at sigma {} from DiT step {}",
                                 state_.own_history.share, state_.own_history.sigma, own.share,
                                 own.sigma, state_.dit_step)
                  << std::endl;
    }
    state_.own_history = own;
    const bool new_csv = !fs::exists(out_ / "loss.csv");
    csv_.open(out_ / "loss.csv", std::ios::app);
    if (new_csv) csv_ << "phase,step,loss,lr,grad_norm,step_ms,psnr\n";

    world::WorldConfig wc;
    wc.seed = state_.world_seed;
    wc.map_size = state_.map_size;
    world_ = std::make_unique<world::World>(wc);
    std::cout << fmt::format(
                     "world seed {} ({} m map), device {}, DiT {} layers x {} (patch {}x{}), "
                     "{} tokens per latent",
                     wc.seed, wc.map_size, core::device_name(device), config_.dit.num_layers,
                     config_.dit.dim, config_.dit.patch_size[1], config_.dit.patch_size[2],
                     config_.tokens_per_latent())
              << std::endl;

    // ---- phase 1: the autoencoder ----
    if (state_.phase == "ae" && state_.ae_step < o_.ae_steps &&
        autoencoder_phase(*model, device, core::AutoencoderPart::kBoth)) {
        return 0;
    }

    if (o_.steps == 0 && state_.phase == "ae") {
        // Autoencoder only: leave the phase open so that a later run can train it further.
        std::cout << fmt::format("autoencoder at step {}; no DiT steps asked for", state_.ae_step)
                  << std::endl;
        return 0;
    }

    // ---- the frozen autoencoder's latent statistics ----
    if (!state_.latent_stats) {
        const int64_t count = std::max<int64_t>(8, o_.batch);
        const Batch batch = prepare(BatchKind::kStats, 0, 4, count, false).get();
        at::NoGradGuard no_grad;
        at::Tensor z = model->encode(batch.video.to(device));  // [N, C, h, w]
        at::Tensor mean = z.mean({0, 2, 3});
        at::Tensor std = z.std({0, 2, 3}).clamp_min(1e-4);
        model->set_latent_stats(mean, std);
        state_.latent_stats = true;
        state_.phase = "dit";
        checkpoint(*model, nullptr, "");
        std::cout << fmt::format("latent statistics: mean |mean| {:.3f}, mean std {:.3f}",
                                 mean.abs().mean().item<double>(), std.mean().item<double>())
                  << std::endl;
    }
    state_.phase = "dit";

    // ---- phase 2: the DiT ----
    if (state_.dit_step < o_.steps) {
        torch::optim::AdamW opt(
            model->dit_parameters(),
            torch::optim::AdamWOptions(o_.lr).weight_decay(o_.weight_decay).betas({0.9, 0.99}));
        const fs::path opt_path = out_ / "optimizer_dit.pt";
        if (o_.resume && state_.dit_step > 0 && fs::exists(opt_path)) {
            load_optimizer(opt, opt_path);
        }
        const bool autocast = o_.bf16 && device.is_cuda();
        if (o_.bf16 && !autocast) std::cout << "--bf16 applies to CUDA only; training in fp32\n";
        const int latents = state_.clip_latents;
        const int64_t c = config_.latent_channels, ls = config_.latent_size();
        const bool pin = device.is_cuda();
        auto next = prepare(BatchKind::kDit, state_.dit_step, latents, o_.batch, pin);
        window_start_ = std::chrono::steady_clock::now();
        while (state_.dit_step < o_.steps) {
            const int64_t step = state_.dit_step;
            Batch batch = take(next);
            if (step + 1 < o_.steps) {
                next = prepare(BatchKind::kDit, step + 1, latents, o_.batch, pin);
            }
            at::Tensor z;
            {
                at::NoGradGuard no_grad;
                z = model->normalize(model->encode(upload(batch.video, device)))
                        .view({o_.batch, latents, c, ls, ls});
            }
            core::FlowMatchingNoise noise = batch.noise;
            for (at::Tensor* t :
                 {&noise.sigma, &noise.noise, &noise.context_sigma, &noise.context_noise,
                  &noise.own_history, &noise.own_history_noise}) {
                *t = upload(*t, device);
            }
            const double lr = learning_rate(o_.lr, step, o_.steps, o_.warmup);
            set_lr(opt, lr);
            opt.zero_grad();
            if (autocast) {
                at::autocast::set_autocast_enabled(at::kCUDA, true);
                at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
            }
            at::Tensor loss;
            try {
                loss = core::flow_matching_loss(*model, z, upload(batch.labels, device), noise);
            } catch (...) {
                if (autocast) at::autocast::set_autocast_enabled(at::kCUDA, false);
                throw;
            }
            if (autocast) at::autocast::set_autocast_enabled(at::kCUDA, false);
            loss.backward();
            // bf16 copies of the weights are cached per step; the optimizer is about to change
            // the weights.
            if (autocast) at::autocast::clear_cache();
            const at::Tensor gn = clip_grad_norm(model->dit_parameters(), o_.clip_grad);
            opt.step();
            state_.dit_step = step + 1;
            record("dit", state_.dit_step, loss, lr, gn, at::Tensor());
            if (end_step(*model, opt, "optimizer_dit.pt", "DiT", state_.dit_step, o_.steps, next)) {
                return 0;
            }
        }
    }
    // ---- phase 3 (optional): the decoder alone, the latent space and the DiT unchanged ----
    if (state_.decoder_step < o_.decoder_steps) {
        state_.phase = "decoder";
        if (autoencoder_phase(*model, device, core::AutoencoderPart::kDecoder)) return 0;
    }
    state_.phase = "done";
    checkpoint(*model, nullptr, "");
    std::cout << fmt::format(
                     "done: autoencoder {} steps, DiT {} steps, decoder fine-tuning {} steps; "
                     "model in {}",
                     state_.ae_step, state_.dit_step, state_.decoder_step, weights_path.string())
              << std::endl;
    return 0;
}

const Registrar kRegister([](CLI::App& app) {
    auto o = std::make_shared<TrainOptions>();
    CLI::App* sub = app.add_subcommand(
        "train", "train the built-in world model on the procedural world (resumable)");
    sub->add_option("--out", o->out, "run directory: weights, optimizer, state, loss.csv")
        ->required();
    sub->add_option("--device", o->device, "auto, cpu or cuda");
    sub->add_option("--preset", o->preset, "model size for a new run: small or tiny")
        ->check(CLI::IsMember({"small", "tiny"}));
    sub->add_option("--steps", o->steps, "DiT steps in total")->check(CLI::NonNegativeNumber);
    sub->add_option("--ae-steps", o->ae_steps, "autoencoder steps in total")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--decoder-steps", o->decoder_steps,
                    "decoder fine-tuning steps in total, after the DiT (the encoder, the latent "
                    "space and the DiT stay as they are)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--decoder-lr", o->decoder_lr, "decoder fine-tuning peak learning rate");
    sub->add_option("--decoder-width", o->decoder_width,
                    "replace the decoder by a freshly initialised one of this width (channels at "
                    "full resolution, twice that below) and fine-tune it from step 0 (needs "
                    "--decoder-steps)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--batch", o->batch, "clips per DiT step")->check(CLI::PositiveNumber);
    sub->add_option("--ae-batch", o->ae_batch, "latent frames per autoencoder step")
        ->check(CLI::PositiveNumber);
    sub->add_option("--reuse", o->reuse,
                    "DiT steps each rendered clip serves, under new noise (1 = none; default: "
                    "the run's own, 1 for a new run)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--own-history", o->own_history,
                    "share of DiT clips (0-1) whose history, after the first latent, is the "
                    "model's own one-pass prediction instead of the ground truth (scheduled "
                    "sampling, against drift in rollouts; default: the run's own, 0 for a new run)")
        ->check(CLI::Range(0.0, 1.0));
    sub->add_option("--own-history-sigma", o->own_history_sigma,
                    "noise level (0-1] of the ground truth that history is predicted from "
                    "(default: the run's own, 0.5 for a new run: the sampler's last step)")
        ->check(CLI::Range(0.0, 1.0));
    sub->add_option("--clip-latents", o->clip_latents,
                    "latent frames per DiT training clip (default: the run's own, 16 for a new "
                    "run; a resumed run may change it, e.g. to extend the history it learns)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--lr", o->lr, "DiT peak learning rate");
    sub->add_option("--ae-lr", o->ae_lr, "autoencoder peak learning rate");
    sub->add_option("--warmup", o->warmup, "linear warmup steps")->check(CLI::NonNegativeNumber);
    sub->add_option("--weight-decay", o->weight_decay, "AdamW weight decay of the DiT");
    sub->add_option("--clip-grad", o->clip_grad, "gradient norm clip")->check(CLI::PositiveNumber);
    sub->add_flag("--bf16", o->bf16, "bf16 autocast for the DiT (CUDA)");
    sub->add_flag("--resume", o->resume, "continue the run in --out");
    sub->add_option("--seed", o->seed, "weights, data and noise seed (new run)");
    sub->add_option("--world-seed", o->world_seed, "procedural world seed (new run)");
    sub->add_option("--map-size", o->map_size, "world map size in metres (new run)");
    sub->add_option("--save-every", o->save_every, "checkpoint period in steps")
        ->check(CLI::PositiveNumber);
    sub->add_option("--log-every", o->log_every, "print period in steps")
        ->check(CLI::PositiveNumber);
    sub->add_option("--time-limit-s", o->time_limit_s,
                    "checkpoint and stop before this many seconds have passed (0 = no limit)");
    sub->add_option("--run-steps", o->run_steps,
                    "checkpoint and stop after this many steps in this invocation (0 = no limit)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--data-threads", o->data_threads, "threads rendering clips (0 = all)");
    sub->add_option("--threads", o->threads, "intra-op threads (0 = default)");
    on_selected(sub, [o] { return Trainer(*o).run(); });
});

}  // namespace
}  // namespace qvg::cli
