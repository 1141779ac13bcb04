#pragma once
// Mp4Writer: RGB frames in, H.264 (libx264, yuv420p) in a fragmented MP4 out. Synchronous and
// single-threaded; Recorder puts it on its own thread. The design note (fragmentation, keyframe
// interval, no B-frames, error handling) is at the top of src/mp4_writer.cpp.

#include <qvg/render/frame_view.h>
#include <qvg/render/recorder_error.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace qvg::render {

class Mp4Writer {
  public:
    static constexpr int kDefaultFps = 16;

    // Creates (truncates) `path` and writes the MP4 header. width and height must be even and
    // positive (yuv420p halves the chroma planes); fps must be in [1, 1000].
    // Throws RecorderError naming the path when the file cannot be created or the encoder fails.
    Mp4Writer(const std::filesystem::path& path, int width, int height, int fps = kDefaultFps);
    // Closes like close() but swallows errors; call close() to see them.
    ~Mp4Writer();
    Mp4Writer(const Mp4Writer&) = delete;
    Mp4Writer& operator=(const Mp4Writer&) = delete;

    // Encodes one frame with presentation time frames_written() / fps. The frame must have the
    // writer's size. An I/O or encoder failure finalises what is already in the file (everything up
    // to the last complete fragment stays playable), closes it and throws RecorderError; from then
    // on the writer accepts no frames and write() throws with the same message.
    void write(const FrameView& frame);

    // Flushes the encoder, writes the last fragment and the trailer and closes the file.
    // Idempotent. Throws RecorderError if that fails; after a failed write() it does nothing more
    // (the failure was already reported and the file finalised).
    void close();

    bool is_open() const;
    // Frames accepted by the encoder so far.
    std::int64_t frames_written() const;
    // Bytes handed to the operating system for the file so far.
    std::int64_t bytes_written() const;
    // The first error, or empty.
    const std::string& error() const;
    const std::filesystem::path& path() const;
    int width() const;
    int height() const;
    int fps() const;

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace qvg::render
