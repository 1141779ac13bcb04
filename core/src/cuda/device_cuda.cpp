#include <cuda_runtime_api.h>

#include <functional>
#include <string>
#include <vector>

#include <c10/cuda/CUDAStream.h>

#include <c10/cuda/CUDACachingAllocator.h>

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

std::string cuda_device_name(c10::DeviceIndex index) {
    cudaDeviceProp prop{};
    const cudaError_t err = cudaGetDeviceProperties(&prop, index);
    QVG_CHECK(err == cudaSuccess, "cudaGetDeviceProperties failed: {}", cudaGetErrorString(err));
    return prop.name;
}

}  // namespace qvg::core::detail
