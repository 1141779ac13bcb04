#pragma once
// Recorder: an encoder thread fed through a fixed ring of preallocated frame slots. push() copies
// the frame into a free slot and returns at once; when every slot is taken the frame is dropped and
// counted, so the producer (the generation thread) never waits for the encoder. The encoder thread
// owns the Mp4Writer and with it all libav* state. Errors on that thread end up in stats().error.

#include <qvg/render/frame_view.h>
#include <qvg/render/recorder_error.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qvg::render {

class Mp4Writer;

struct RecorderOptions {
    int width = 0;   // even, > 0
    int height = 0;  // even, > 0
    int fps = 16;
    int ring_slots = 8;  // frames that may wait for the encoder; at least 1
    // Called on the encoder thread before each frame is encoded, with the frame's index in the
    // file. For tests that need a slow consumer; leave empty otherwise.
    std::function<void(std::int64_t frame_index)> before_encode;
};

struct RecorderStats {
    std::int64_t frames_pushed = 0;   // push() calls
    std::int64_t frames_written = 0;  // accepted by the encoder
    std::int64_t frames_dropped = 0;  // ring full, recorder stopped or failed
    std::int64_t bytes_written = 0;   // handed to the operating system
    std::string error;                // the first error of the encoder thread, or empty
    bool running = false;             // accepting frames (not stopped, no error)
};

class Recorder {
  public:
    // Starts the encoder thread and waits until it has opened the file. Throws RecorderError
    // (naming the path) if the options are invalid or the file cannot be created.
    Recorder(const std::filesystem::path& path, RecorderOptions options);
    // Calls stop().
    ~Recorder();
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    // Copies the frame into a free slot and returns true, or drops it and returns false when the
    // ring is full or the recorder is stopped or has failed. Never waits for the encoder.
    // Throws RecorderError if the frame's size differs from the recorder's (a caller mistake).
    // Safe to call from several threads; frames are written in the order slots were taken.
    bool push(const FrameView& frame);

    RecorderStats stats() const;

    // Encodes the frames already in the ring, closes the file and joins the thread. Idempotent;
    // never throws (a failure to close becomes stats().error).
    void stop();

    const std::filesystem::path& path() const { return path_; }

  private:
    enum class SlotState { kFree, kFilling, kReady, kEncoding };
    struct Slot {
        std::vector<std::uint8_t> rgb;  // width * 3 * height, rows packed
        SlotState state = SlotState::kFree;
        std::int64_t frame_index = 0;
    };

    void run();
    // Opens the writer on the encoder thread; returns null (and sets error_) on failure.
    std::unique_ptr<Mp4Writer> open_writer();

    const std::filesystem::path path_;
    const RecorderOptions options_;
    const std::size_t frame_bytes_;

    // Locking: mutex_ guards every field below it except thread_, which only the thread that
    // constructs, stops or destroys the Recorder touches. Slot pixel data (Slot::rgb) is not
    // guarded by the lock but by its state: the producer that moved a slot kFree -> kFilling
    // writes it without the lock, the encoder thread reads it in kEncoding without the lock, and
    // the state changes themselves happen under mutex_.
    mutable std::mutex mutex_;
    std::condition_variable work_cv_;  // encoder: a slot became kReady, or stop was requested
    std::condition_variable open_cv_;  // constructor: the encoder thread has tried to open
    std::vector<Slot> slots_;
    std::size_t write_slot_ = 0;  // next slot a producer takes
    std::size_t read_slot_ = 0;   // next slot the encoder takes
    std::int64_t next_frame_index_ = 0;
    bool open_done_ = false;
    bool opened_ = false;
    bool stopping_ = false;
    bool failed_ = false;
    RecorderStats stats_;

    std::thread thread_;
};

}  // namespace qvg::render
