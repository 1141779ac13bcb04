#include "av_util.h"

#include <fmt/format.h>

namespace qvg::render::detail {

std::string av_error_text(int errnum) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {};
    if (av_strerror(errnum, buf, sizeof(buf)) < 0) {
        return fmt::format("unknown libav error {}", errnum);
    }
    return buf;
}

void throw_av_error(int errnum, std::string_view what, const std::filesystem::path& path) {
    throw RecorderError(fmt::format("{} '{}': {}", what, path.string(), av_error_text(errnum)));
}

FramePtr alloc_frame(const std::filesystem::path& path) {
    FramePtr f(av_frame_alloc());
    if (!f) throw_av_error(AVERROR(ENOMEM), "cannot allocate a frame for", path);
    return f;
}

PacketPtr alloc_packet(const std::filesystem::path& path) {
    PacketPtr p(av_packet_alloc());
    if (!p) throw_av_error(AVERROR(ENOMEM), "cannot allocate a packet for", path);
    return p;
}

}  // namespace qvg::render::detail
