#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace qvg::test {
namespace {

pid_t spawn(const std::vector<std::string>& argv, int out_fd) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        dup2(out_fd, STDOUT_FILENO);
        dup2(out_fd, STDERR_FILENO);
        execvp(args[0], args.data());
        _exit(127);
    }
    return pid;
}

}  // namespace

RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
    const std::filesystem::path log = std::filesystem::temp_directory_path() /
                                      ("qvg-gui-run-" + std::to_string(getpid()) + ".log");
    RunResult r;
    {
        Process p(argv, log);
        const std::optional<int> code = p.wait(timeout);
        r.exit_code = code.value_or(-1);
    }
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    r.output = ss.str();
    std::filesystem::remove(log);
    return r;
}

Process::Process(const std::vector<std::string>& argv, const std::filesystem::path& log_path) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + log_path.string());
    pid_ = spawn(argv, fd);
    close(fd);
}

Process::~Process() {
    if (!reaped_ && pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
}

bool Process::running() {
    if (reaped_) return false;
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        reaped_ = true;
        if (WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
        return false;
    }
    return true;
}

std::optional<int> Process::wait(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return exit_code_;
}

std::string shell(const std::string& command) {
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return {};
    std::string out;
    std::array<char, 256> buf{};
    while (fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) out += buf.data();
    pclose(pipe);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

std::string find_window(const std::string& name, std::chrono::seconds timeout, bool only_visible) {
    const std::string command = std::string("xdotool search ") +
                                (only_visible ? "--onlyvisible " : "") + "--name '" + name +
                                "' 2>/dev/null | head -1";
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        std::string id = shell(command);
        if (!id.empty() || std::chrono::steady_clock::now() > deadline) return id;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

}  // namespace qvg::test
