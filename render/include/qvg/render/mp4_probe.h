#pragma once
// Reading back what Mp4Writer wrote (or any MP4): stream facts and decoded frames. Used by the
// recorder's tests and by qvg's end-to-end tests; it throws RecorderError on unreadable files.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qvg::render {

// Facts about the first video stream of a file.
struct Mp4Info {
    // Intact packets demuxed until end of file or the first read error; a packet cut short at the
    // end of a truncated file does not count.
    std::int64_t frame_count = 0;
    int width = 0;
    int height = 0;
    std::string codec_name;   // libavcodec's short name, e.g. "h264"
    std::string pix_fmt;      // e.g. "yuv420p"; empty if unknown
    double fps = 0.0;         // the stream's frame rate as libavformat guesses it
    double duration_s = 0.0;  // from the packets: last pts + its duration - first pts
    // The stream time base, so that timestamps can be compared exactly: t = pts * num / den.
    std::int64_t time_base_num = 0;
    std::int64_t time_base_den = 1;
    std::vector<std::int64_t> pts;  // presentation order, in the stream time base
    std::vector<double> pts_s;      // the same in seconds
};

Mp4Info probe_mp4(const std::filesystem::path& path);

// A decoded frame converted to RGB8 interleaved, rows packed (stride = width * 3).
struct RgbImage {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> rgb;
};

// Decodes the first video stream and returns up to max_frames frames in presentation order
// (all of them when max_frames < 0).
std::vector<RgbImage> decode_mp4_rgb(const std::filesystem::path& path, int max_frames = -1);

}  // namespace qvg::render
