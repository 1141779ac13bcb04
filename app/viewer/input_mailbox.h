#pragma once
// The latest input, handed from the UI thread to the generation thread: the keys held now (latest
// value) and the mouse motion accumulated since the generation thread last took it, with a
// sequence number and the time of the newest change so that input-to-photon latency can be
// measured. Not a queue: the generation thread only ever sees the newest state.

#include <qvg/input/key_map.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace qvg::app {

struct InputSample {
    input::InputState state;
    std::uint64_t sequence = 0;  // bumped on every change
    std::chrono::steady_clock::time_point changed_at;
};

class InputMailbox {
  public:
    // UI thread.
    void set_keys(std::vector<std::string> keys_down) {
        std::lock_guard lock(mutex_);
        if (keys_down == sample_.state.keys_down) return;
        sample_.state.keys_down = std::move(keys_down);
        touch();
    }
    void add_mouse(double dx_px, double dy_px) {
        std::lock_guard lock(mutex_);
        sample_.state.mouse_dx_px += dx_px;
        sample_.state.mouse_dy_px += dy_px;
        touch();
    }

    // Generation thread: the current keys and the motion since the last take (which it resets).
    InputSample take() {
        std::lock_guard lock(mutex_);
        InputSample out = sample_;
        sample_.state.mouse_dx_px = 0.0;
        sample_.state.mouse_dy_px = 0.0;
        return out;
    }

  private:
    void touch() {
        ++sample_.sequence;
        sample_.changed_at = std::chrono::steady_clock::now();
    }
    std::mutex mutex_;  // guards sample_
    InputSample sample_;
};

}  // namespace qvg::app
