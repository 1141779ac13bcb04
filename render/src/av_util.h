#pragma once
// Private helpers for the libav* code of the recorder: owning pointers and error checks.

#include <qvg/render/recorder_error.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace qvg::render::detail {

std::string av_error_text(int errnum);

// "<what> '<path>': <av_strerror text>"
[[noreturn]] void throw_av_error(int errnum, std::string_view what,
                                 const std::filesystem::path& path);

// Returns ret when it is not an error; throws otherwise.
inline int check_av(int ret, std::string_view what, const std::filesystem::path& path) {
    if (ret < 0) throw_av_error(ret, what, path);
    return ret;
}

struct CodecContextDeleter {
    void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
    void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
    void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
    void operator()(SwsContext* s) const { sws_freeContext(s); }
};
// An input context from avformat_open_input.
struct InputContextDeleter {
    void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};

using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;
using InputContextPtr = std::unique_ptr<AVFormatContext, InputContextDeleter>;

// Allocation helpers that throw instead of returning null.
FramePtr alloc_frame(const std::filesystem::path& path);
PacketPtr alloc_packet(const std::filesystem::path& path);

}  // namespace qvg::render::detail
