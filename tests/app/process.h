#pragma once
// Starting qvg-world and xdotool from the GUI tests.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qvg::test {

struct RunResult {
    int exit_code = -1;  // -1: killed by a signal or timed out
    std::string output;  // stdout and stderr
};

// Runs argv to completion (at most timeout) and collects its output.
RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout);

// A process in the background; its output goes to log_path. The destructor kills it.
class Process {
  public:
    Process(const std::vector<std::string>& argv, const std::filesystem::path& log_path);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    bool running();
    // Waits for the exit; returns the exit code, or nothing on timeout / signal.
    std::optional<int> wait(std::chrono::seconds timeout);
    pid_t pid() const { return pid_; }

  private:
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
    bool reaped_ = false;
};

// Runs a shell command line (for xdotool), returning its trimmed stdout.
std::string shell(const std::string& command);

// The id of the first window whose name matches the regular expression `name` (xdotool's
// syntax), polled until `timeout`; empty when none appeared. One `xdotool search --sync` is not
// enough: it gives up at once on an X error, which windows that close while it walks the tree
// (Qt's tooltips and transient windows) raise.
std::string find_window(const std::string& name, std::chrono::seconds timeout,
                        bool only_visible = false);

}  // namespace qvg::test
