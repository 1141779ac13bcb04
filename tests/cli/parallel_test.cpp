// each_in_parallel: every index once, on the threads asked for, the first exception rethrown.

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <parallel.h>

namespace qvg::cli {
namespace {

TEST(EachInParallel, RunsEveryIndexOnceOnSeveralThreads) {
    for (int threads : {1, 3, 64}) {
        for (int64_t n : {0, 1, 5, 1000}) {
            std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
            std::mutex m;
            std::set<std::thread::id> ids;
            each_in_parallel(n, threads, [&](int64_t i) {
                ++seen[static_cast<size_t>(i)];
                const std::lock_guard<std::mutex> lock(m);
                ids.insert(std::this_thread::get_id());
                if (ids.size() < 2) std::this_thread::yield();
            });
            for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], 1) << i;
            EXPECT_LE(ids.size(), static_cast<size_t>(std::max(threads, 1)));
        }
    }
    // Two indices on two threads run at the same time: each waits (10 s at most) for the other.
    std::atomic<int> arrived{0};
    std::atomic<bool> met{true};
    each_in_parallel(2, 2, [&](int64_t) {
        ++arrived;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (arrived < 2 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
        if (arrived < 2) met = false;
    });
    EXPECT_TRUE(met);
}

TEST(EachInParallel, RethrowsTheFirstErrorAfterAllThreadsStop) {
    std::atomic<int> ran{0};
    EXPECT_THROW(each_in_parallel(100, 4,
                                  [&](int64_t i) {
                                      ++ran;
                                      if (i == 3) throw std::runtime_error("bad walk");
                                  }),
                 std::runtime_error);
    EXPECT_GE(ran, 4);
    EXPECT_LE(ran, 100);
}

}  // namespace
}  // namespace qvg::cli
