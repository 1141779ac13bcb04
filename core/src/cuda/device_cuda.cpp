#include <cuda_runtime_api.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <c10/cuda/CUDAStream.h>

#include <c10/cuda/CUDACachingAllocator.h>

#include "phase_recorder.h"
#include "qvg/core/error.h"

namespace qvg::core::detail {

void cuda_reset_peak_memory(c10::DeviceIndex index) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(index);
}

int64_t cuda_peak_memory_bytes(c10::DeviceIndex index) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
        .peak;
}

int64_t cuda_free_memory_bytes(c10::DeviceIndex index) {
    int current = 0;
    cudaGetDevice(&current);
    cudaSetDevice(index);
    size_t free_bytes = 0, total = 0;
    const cudaError_t err = cudaMemGetInfo(&free_bytes, &total);
    cudaSetDevice(current);
    QVG_CHECK(err == cudaSuccess, "cudaMemGetInfo failed: {}", cudaGetErrorString(err));
    return static_cast<int64_t>(free_bytes);
}

std::vector<double> cuda_event_times_ms(const std::function<void()>& fn, int reps) {
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    std::vector<double> out;
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    for (int i = 0; i < reps; ++i) {
        cudaEventRecord(start, stream);
        fn();
        cudaEventRecord(stop, stream);
        cudaEventSynchronize(stop);
        float ms = 0;
        cudaEventElapsedTime(&ms, start, stop);
        out.push_back(ms);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return out;
}

namespace {

class EventRecorder final : public PhaseRecorder {
  public:
    ~EventRecorder() override {
        for (auto& [name, ev] : marks_) cudaEventDestroy(ev);
    }
    void mark(const std::string& name) override {
        cudaEvent_t ev;
        QVG_CHECK(cudaEventCreate(&ev) == cudaSuccess, "cudaEventCreate failed");
        marks_.emplace_back(name, ev);
        cudaEventRecord(ev, c10::cuda::getCurrentCUDAStream());
    }
    std::vector<std::pair<std::string, double>> finish() override {
        std::vector<std::pair<std::string, double>> out;
        if (marks_.empty()) return out;
        cudaEventSynchronize(marks_.back().second);
        for (size_t i = 1; i < marks_.size(); ++i) {
            float ms = 0;
            cudaEventElapsedTime(&ms, marks_[i - 1].second, marks_[i].second);
            out.emplace_back(marks_[i].first, ms);
        }
        return out;
    }

  private:
    std::vector<std::pair<std::string, cudaEvent_t>> marks_;
};

}  // namespace

std::unique_ptr<PhaseRecorder> cuda_phase_recorder() { return std::make_unique<EventRecorder>(); }

std::string cuda_device_name(c10::DeviceIndex index) {
    cudaDeviceProp prop{};
    const cudaError_t err = cudaGetDeviceProperties(&prop, index);
    QVG_CHECK(err == cudaSuccess, "cudaGetDeviceProperties failed: {}", cudaGetErrorString(err));
    return prop.name;
}

}  // namespace qvg::core::detail
