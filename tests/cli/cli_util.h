#pragma once
// Runs the qvg binary and captures its output and exit status.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace qvg {

struct CommandResult {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};

// `env`: extra variables for the command, e.g. "QVG_WORLD_MODEL=/tmp/m.safetensors".
// OMP_WAIT_POLICY=PASSIVE: a test that asks for two threads (--threads 2) while ctest runs
// another beside it took 290 s with OpenMP's spinning waits, 90 s with passive ones.
inline CommandResult run_qvg(const std::string& args, const std::string& env = "") {
    const std::string cmd = env + " OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE '" +
                            std::string(QVG_CLI) + "' " + args + " 2>&1";
    CommandResult r;
    FILE* pipe = popen(cmd.c_str(), "r");
    if (pipe == nullptr) return r;
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
    const int status = pclose(pipe);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

}  // namespace qvg
