#include "qvg/core/device.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "phase_recorder.h"
#include "qvg/core/error.h"

namespace qvg::core {

#ifdef QVG_HAVE_CUDA
namespace detail {
void cuda_reset_peak_memory(c10::DeviceIndex index);
int64_t cuda_peak_memory_bytes(c10::DeviceIndex index);
int64_t cuda_free_memory_bytes(c10::DeviceIndex index);
std::string cuda_device_name(c10::DeviceIndex index);
std::vector<double> cuda_event_times_ms(const std::function<void()>& fn, int reps);
}  // namespace detail
#endif

namespace detail {

namespace {

class ClockRecorder final : public PhaseRecorder {
  public:
    void mark(const std::string& name) override {
        marks_.emplace_back(name, std::chrono::steady_clock::now());
    }
    std::vector<std::pair<std::string, double>> finish() override {
        std::vector<std::pair<std::string, double>> out;
        for (size_t i = 1; i < marks_.size(); ++i) {
            out.emplace_back(marks_[i].first, std::chrono::duration<double, std::milli>(
                                                  marks_[i].second - marks_[i - 1].second)
                                                  .count());
        }
        return out;
    }

  private:
    std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> marks_;
};

thread_local PhaseRecorder* active_recorder = nullptr;

}  // namespace
}  // namespace detail

void mark_phase(const std::string& name) {
    if (detail::active_recorder != nullptr) detail::active_recorder->mark(name);
}

std::vector<std::pair<std::string, double>> phase_median_ms(c10::Device device,
                                                            const std::function<void()>& fn,
                                                            int reps, int warmup) {
    for (int i = 0; i < warmup; ++i) fn();
    synchronize(device);
    std::vector<std::string> names;
    std::vector<std::vector<double>> times;
    for (int r = 0; r < reps; ++r) {
        std::unique_ptr<detail::PhaseRecorder> rec;
#ifdef QVG_HAVE_CUDA
        if (device.is_cuda()) rec = detail::cuda_phase_recorder();
#endif
        if (!rec) rec = std::make_unique<detail::ClockRecorder>();
        struct Active {
            explicit Active(detail::PhaseRecorder* p) { detail::active_recorder = p; }
            ~Active() { detail::active_recorder = nullptr; }
        };
        {
            const Active active(rec.get());
            rec->mark("start");
            fn();
            rec->mark("(rest)");
        }
        const auto phases = rec->finish();
        if (r == 0) {
            for (const auto& [name, ms] : phases) names.push_back(name);
            times.resize(phases.size());
        }
        QVG_CHECK(phases.size() == names.size(), "phase_median_ms: run {} had {} phases, not {}", r,
                  phases.size(), names.size());
        for (size_t i = 0; i < phases.size(); ++i) times[i].push_back(phases[i].second);
    }
    std::vector<std::pair<std::string, double>> out;
    for (size_t i = 0; i < names.size(); ++i) {
        std::sort(times[i].begin(), times[i].end());
        out.emplace_back(names[i], times[i][times[i].size() / 2]);
    }
    return out;
}

void reset_peak_memory(c10::Device device) {
#ifdef QVG_HAVE_CUDA
    if (device.is_cuda()) detail::cuda_reset_peak_memory(device.index());
#endif
    (void)device;
}

int64_t peak_memory_bytes(c10::Device device) {
#ifdef QVG_HAVE_CUDA
    if (device.is_cuda()) return detail::cuda_peak_memory_bytes(device.index());
#endif
    (void)device;
    return 0;
}

int64_t free_memory_bytes(c10::Device device) {
#ifdef QVG_HAVE_CUDA
    if (device.is_cuda()) return detail::cuda_free_memory_bytes(device.index());
#endif
    (void)device;
    return 0;
}

double median_ms(c10::Device device, const std::function<void()>& fn, int reps, int warmup) {
    for (int i = 0; i < warmup; ++i) fn();
    synchronize(device);
    std::vector<double> times;
#ifdef QVG_HAVE_CUDA
    if (device.is_cuda()) times = detail::cuda_event_times_ms(fn, reps);
#endif
    if (times.empty()) {
        for (int i = 0; i < reps; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            fn();
            synchronize(device);
            times.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count());
        }
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

std::string device_name(c10::Device device) {
#ifdef QVG_HAVE_CUDA
    if (device.is_cuda()) return detail::cuda_device_name(device.index());
#endif
    return fmt::format("cpu ({} threads)", at::get_num_threads());
}

bool cuda_available() { return at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0; }

c10::Device resolve_device(const std::string& name) {
    if (name == "auto")
        return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    c10::Device device(c10::kCPU);
    try {
        device = c10::Device(name);
    } catch (const std::exception&) {
        fail("unknown device '{}' (expected auto, cpu, cuda or cuda:N)", name);
    }
    QVG_CHECK(device.is_cpu() || device.is_cuda(), "unsupported device '{}' (expected cpu or cuda)",
              name);
    QVG_CHECK(device.is_cpu() || cuda_available(),
              "device '{}' was asked for but no CUDA GPU is available", name);
    if (device.is_cuda() && !device.has_index()) device = c10::Device(c10::kCUDA, 0);
    return device;
}

void synchronize(c10::Device device) {
    if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.index());
}

}  // namespace qvg::core
