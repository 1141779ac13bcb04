#pragma once
// Choosing and synchronising the compute device without pulling CUDA headers into callers.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>

namespace qvg::core {

// "auto" (CUDA when a GPU is present, else CPU), "cpu", "cuda" or "cuda:N".
// Throws qvg::core::Error for unknown names or when CUDA is asked for but absent.
c10::Device resolve_device(const std::string& name);

bool cuda_available();

// Waits for all work queued on the device (no-op on the CPU). For honest timings.
void synchronize(c10::Device device);

// Device memory statistics of the caching allocator (0 on the CPU, where nothing is tracked).
void reset_peak_memory(c10::Device device);
int64_t peak_memory_bytes(c10::Device device);
int64_t free_memory_bytes(c10::Device device);  // what the driver reports free now (0 on CPU)
// Median wall time of `fn` over `reps` runs after `warmup` runs: CUDA events on a GPU,
// a steady clock around a synchronised call on the CPU.
double median_ms(c10::Device device, const std::function<void()>& fn, int reps, int warmup = 3);

// Time per phase of `fn`, median over `reps` runs after `warmup` runs: while fn runs on this
// thread, each mark_phase(name) inside core ends the phase `name` (a CUDA event on the current
// stream, no synchronisation; a clock reading on the CPU). Returns (name, ms) per phase in
// order, the first from the start of fn, and "(rest)" from the last mark to fn's return.
std::vector<std::pair<std::string, double>> phase_median_ms(c10::Device device,
                                                            const std::function<void()>& fn,
                                                            int reps, int warmup = 3);
// Ends a phase for phase_median_ms; does nothing outside it.
void mark_phase(const std::string& name);

// "NVIDIA H200", or "cpu (N threads)".
std::string device_name(c10::Device device);

}  // namespace qvg::core
