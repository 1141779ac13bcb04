#pragma once
// Triple buffer: one writer fills back() and publishes it, one reader acquires the newest
// published slot. Neither waits for the other beyond an index swap; a frame published while the
// previous one was never acquired replaces it and counts as dropped.

#include <array>
#include <cstdint>
#include <mutex>

namespace qvg::app {

template <typename T>
class TripleBuffer {
  public:
    // Writer only: the slot to fill next.
    T& back() { return slots_[back_]; }

    // Writer only: makes back() the newest frame. Returns true when it replaced a frame the
    // reader never acquired.
    bool publish() {
        std::lock_guard lock(mutex_);
        std::swap(back_, middle_);
        const bool dropped = fresh_;
        fresh_ = true;
        if (dropped) ++dropped_;
        return dropped;
    }

    // Reader only: moves the newest published frame to front(). False when nothing new arrived.
    bool acquire() {
        std::lock_guard lock(mutex_);
        if (!fresh_) return false;
        std::swap(front_, middle_);
        fresh_ = false;
        return true;
    }

    // Reader only: the frame last acquired (default-constructed before the first).
    const T& front() const { return slots_[front_]; }

    std::int64_t dropped() const {
        std::lock_guard lock(mutex_);
        return dropped_;
    }

  private:
    std::array<T, 3> slots_;
    // Guarded by mutex_: the indices, fresh_ and dropped_. Slot contents are not: back_ belongs to
    // the writer and front_ to the reader between swaps, so each touches only its own slot.
    mutable std::mutex mutex_;
    int back_ = 0;
    int middle_ = 1;
    int front_ = 2;
    bool fresh_ = false;
    std::int64_t dropped_ = 0;
};

}  // namespace qvg::app
