#pragma once
// Private to device.cpp and cuda/device_cuda.cpp: the marks of one run of phase_median_ms.

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qvg::core::detail {

class PhaseRecorder {
  public:
    virtual ~PhaseRecorder() = default;
    virtual void mark(const std::string& name) = 0;
    // (name, ms since the previous mark) for every mark after the first; waits for the device.
    virtual std::vector<std::pair<std::string, double>> finish() = 0;
};

#ifdef QVG_HAVE_CUDA
// CUDA events on the current stream.
std::unique_ptr<PhaseRecorder> cuda_phase_recorder();
#endif

}  // namespace qvg::core::detail
