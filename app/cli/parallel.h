#pragma once
// Runs fn(i) for every i in [0, n) on up to `threads` threads (the caller's among them), each
// taking the next index as it finishes one. at::parallel_for would not do: in code built
// without OpenMP (ours, so as not to load a second OpenMP runtime beside LibTorch's) it runs
// serially. The first exception thrown stops the hand-out and is rethrown once all threads are
// done. fn must be safe to run concurrently for different i.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qvg::cli {

inline void each_in_parallel(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
    const int64_t workers = std::clamp<int64_t>(threads, 1, std::max<int64_t>(n, 1));
    std::atomic<int64_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
        for (int64_t i = next++; i < n; i = next++) {
            try {
                fn(i);
            } catch (...) {
                const std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
                next = n;
            }
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(workers - 1));
    for (int64_t t = 1; t < workers; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace qvg::cli
