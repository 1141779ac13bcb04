#include <cuda_runtime_api.h>

#include <string>

#include <c10/cuda/CUDACachingAllocator.h>

#include "qvg/core/error.h"

namespace qvg::core::detail {

void cuda_reset_peak_memory(c10::DeviceIndex index) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(index);
}

int64_t cuda_peak_memory_bytes(c10::DeviceIndex index) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
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

std::string cuda_device_name(c10::DeviceIndex index) {
    cudaDeviceProp prop{};
    const cudaError_t err = cudaGetDeviceProperties(&prop, index);
    QVG_CHECK(err == cudaSuccess, "cudaGetDeviceProperties failed: {}", cudaGetErrorString(err));
    return prop.name;
}

}  // namespace qvg::core::detail
