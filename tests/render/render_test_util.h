#pragma once
// Frames, image comparison and a file-size-limited child process for the recorder's tests.

#include <qvg/render/frame_view.h>
#include <qvg/render/recorder_error.h>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

namespace qvg::render::test {

// An RGB8 image, rows packed, that owns its pixels.
struct Image {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> rgb;

    FrameView view() const { return FrameView{rgb.data(), width, height, width * 3}; }
};

// A smooth pattern of slow waves that moves with t, so every frame differs from the last.
inline Image smooth_pattern(int width, int height, int t) {
    Image img{width, height,
              std::vector<std::uint8_t>(static_cast<std::size_t>(width) * 3 * height)};
    const double two_pi = 2.0 * std::numbers::pi;
    for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
            std::uint8_t* p = img.rgb.data() + (static_cast<std::size_t>(y) * width + x) * 3;
            p[0] = static_cast<std::uint8_t>(128 + 90 * std::sin(two_pi * (x + 2 * t) / 64.0));
            p[1] = static_cast<std::uint8_t>(128 + 90 * std::cos(two_pi * (y - t) / 48.0));
            p[2] = static_cast<std::uint8_t>(128 + 60 * std::sin(two_pi * (x + y + 3 * t) / 80.0));
        }
    }
    return img;
}

// Pseudo-random texture scrolling one pixel a frame: costly to code (frames take kilobytes) yet
// predictable from the previous frame, so the encoder keeps its one-keyframe-a-second rhythm.
inline Image scrolling_noise(int width, int height, int t) {
    Image img{width, height,
              std::vector<std::uint8_t>(static_cast<std::size_t>(width) * 3 * height)};
    for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
            std::uint32_t h = static_cast<std::uint32_t>(x + t) * 73856093u ^
                              static_cast<std::uint32_t>(y) * 19349663u;
            h = (h ^ (h >> 13)) * 1274126177u;
            std::uint8_t* p = img.rgb.data() + (static_cast<std::size_t>(y) * width + x) * 3;
            p[0] = static_cast<std::uint8_t>(h >> 24);
            p[1] = static_cast<std::uint8_t>(h >> 16);
            p[2] = static_cast<std::uint8_t>(h >> 8);
        }
    }
    return img;
}

// The message of the RecorderError that fn throws; a test failure when it throws none.
template <class Fn>
std::string recorder_error_of(Fn&& fn) {
    try {
        fn();
    } catch (const RecorderError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no RecorderError was thrown";
    return {};
}

// Peak signal-to-noise ratio in dB over all channels; +inf for identical images.
inline double psnr_db(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
    double squared = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        squared += d * d;
    }
    if (squared == 0.0) return INFINITY;
    const double mse = squared / static_cast<double>(a.size());
    return 10.0 * std::log10(255.0 * 255.0 / mse);
}

struct ChildResult {
    int exit_code = -1;  // -1: the child did not exit normally
    std::string output;  // what the child's function returned (or the exception it threw)
};

// Runs fn in a forked child whose files may not grow beyond limit_bytes, as on a full disk: with
// SIGXFSZ ignored, a write past the limit fails with EFBIG. The parent's own limit is untouched.
// Exit code 0 when fn returned, 3 when it threw.
inline ChildResult run_with_file_size_limit(rlim_t limit_bytes,
                                            const std::function<std::string()>& fn) {
    int fds[2];
    if (pipe(fds) != 0) return {-1, "pipe failed"};
    std::fflush(nullptr);  // or the child would print the parent's buffered output again
    const pid_t pid = fork();
    if (pid < 0) return {-1, "fork failed"};
    if (pid == 0) {
        close(fds[0]);
        std::string out;
        int code = 0;
        const rlimit limit{limit_bytes, limit_bytes};
        if (std::signal(SIGXFSZ, SIG_IGN) == SIG_ERR || setrlimit(RLIMIT_FSIZE, &limit) != 0) {
            out = "cannot set the file size limit";
            code = 4;
        } else {
            try {
                out = fn();
            } catch (const std::exception& e) {
                out = std::string("exception: ") + e.what();
                code = 3;
            }
        }
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = write(fds[1], out.data() + done, out.size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        close(fds[1]);
        _exit(code);
    }
    close(fds[1]);
    ChildResult result;
    char buf[4096];
    for (;;) {
        const ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n > 0) {
            result.output.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

}  // namespace qvg::render::test
