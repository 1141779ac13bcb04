#include "qvg/core/device.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "qvg/core/error.h"

namespace qvg::core {

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
