#pragma once
// Progress of a long CLI run on stderr: a bar redrawn in place when stderr is a terminal, one
// plain line per step otherwise (logs and pipes must not fill up with carriage returns).

#include <chrono>
#include <cstdint>
#include <string>

namespace qvg::cli {

class Progress {
  public:
    // `label` prefixes every line ("generate"); `total` is the number of steps.
    Progress(std::string label, int64_t total);
    // Ends a bar that is still open, so that later output starts on a fresh line.
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    // Reports that `done` of `total` steps are complete; `detail` describes the last one.
    void update(int64_t done, const std::string& detail);
    // Closes the bar (a newline on a terminal); idempotent.
    void finish();

    bool interactive() const { return interactive_; }

  private:
    std::string label_;
    int64_t total_;
    bool interactive_;
    bool open_ = false;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace qvg::cli
