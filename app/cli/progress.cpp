#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

namespace qvg::cli {
namespace {

constexpr int64_t kBarWidth = 30;

}  // namespace

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      interactive_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& detail) {
    done = std::clamp<int64_t>(done, 0, total_);
    if (!interactive_) {
        std::cerr << fmt::format("{}: {}/{} {}\n", label_, done, total_, detail) << std::flush;
        return;
    }
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    // Remaining time from the mean step so far; the first blocks attend to less history, so this
    // is an underestimate for long runs, but it is only a hint.
    const double eta_s =
        done > 0 ? elapsed_s / static_cast<double>(done) * static_cast<double>(total_ - done) : 0.0;
    const int64_t filled = done * kBarWidth / total_;
    const std::string bar = std::string(static_cast<size_t>(filled), '#') +
                            std::string(static_cast<size_t>(kBarWidth - filled), '.');
    // \33[K clears what a longer previous line left behind.
    std::cerr << fmt::format("\r{} [{}] {}/{} {:.0f}s elapsed, ~{:.0f}s left  {}\33[K", label_, bar,
                             done, total_, elapsed_s, eta_s, detail)
              << std::flush;
    open_ = true;
}

void Progress::finish() {
    if (open_) std::cerr << "\n" << std::flush;
    open_ = false;
}

}  // namespace qvg::cli
