// Reading an MP4 back with libavformat/libavcodec. A file cut short (a full disk, a killed
// program) is read up to the first error rather than rejected, because "how much of it is still
// there" is exactly what the recorder's tests ask.

#include <qvg/render/mp4_probe.h>

#include "av_util.h"

#include <fmt/format.h>

#include <algorithm>

namespace qvg::render {

using detail::check_av;

namespace {

struct OpenedInput {
    detail::InputContextPtr context;
    AVStream* stream = nullptr;
};

OpenedInput open_video(const std::filesystem::path& path) {
    AVFormatContext* raw = nullptr;
    check_av(avformat_open_input(&raw, path.c_str(), nullptr, nullptr), "cannot open", path);
    OpenedInput in;
    in.context.reset(raw);
    check_av(avformat_find_stream_info(raw, nullptr), "cannot read the streams of", path);
    const int index = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    check_av(index, "no video stream in", path);
    in.stream = raw->streams[index];
    return in;
}

}  // namespace

Mp4Info probe_mp4(const std::filesystem::path& path) {
    OpenedInput in = open_video(path);
    const AVCodecParameters* par = in.stream->codecpar;
    Mp4Info info;
    info.width = par->width;
    info.height = par->height;
    info.codec_name = avcodec_get_name(par->codec_id);
    if (const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format))) {
        info.pix_fmt = name;
    }
    info.fps = av_q2d(av_guess_frame_rate(in.context.get(), in.stream, nullptr));
    info.time_base_num = in.stream->time_base.num;
    info.time_base_den = in.stream->time_base.den;

    detail::PacketPtr packet = detail::alloc_packet(path);
    std::int64_t end = 0;  // the largest pts + duration
    // Stop at end of file or at the first read error: a cut-off file counts what it still holds.
    while (av_read_frame(in.context.get(), packet.get()) >= 0) {
        // A packet cut short at the end of a truncated file is flagged corrupt; it is no frame.
        const bool intact = !(packet->flags & AV_PKT_FLAG_CORRUPT);
        if (packet->stream_index == in.stream->index && intact) {
            const std::int64_t pts = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
            info.pts.push_back(pts);
            end = info.frame_count == 0 ? pts + packet->duration
                                        : std::max(end, pts + packet->duration);
            ++info.frame_count;
        }
        av_packet_unref(packet.get());
    }
    std::sort(info.pts.begin(), info.pts.end());
    const double tb = av_q2d(in.stream->time_base);
    info.pts_s.reserve(info.pts.size());
    for (const std::int64_t pts : info.pts) info.pts_s.push_back(static_cast<double>(pts) * tb);
    if (!info.pts.empty()) info.duration_s = static_cast<double>(end - info.pts.front()) * tb;
    return info;
}

std::vector<RgbImage> decode_mp4_rgb(const std::filesystem::path& path, int max_frames) {
    OpenedInput in = open_video(path);
    const AVCodec* codec = avcodec_find_decoder(in.stream->codecpar->codec_id);
    if (!codec) {
        throw RecorderError(fmt::format("cannot decode '{}': no decoder for {}", path.string(),
                                        avcodec_get_name(in.stream->codecpar->codec_id)));
    }
    detail::CodecContextPtr decoder(avcodec_alloc_context3(codec));
    if (!decoder) check_av(AVERROR(ENOMEM), "cannot allocate a decoder for", path);
    check_av(avcodec_parameters_to_context(decoder.get(), in.stream->codecpar),
             "cannot set up the decoder for", path);
    check_av(avcodec_open2(decoder.get(), codec, nullptr), "cannot open the decoder for", path);

    detail::PacketPtr packet = detail::alloc_packet(path);
    detail::FramePtr frame = detail::alloc_frame(path);
    detail::SwsPtr sws;
    std::vector<RgbImage> images;
    const auto want_more = [&] {
        return max_frames < 0 || images.size() < static_cast<std::size_t>(max_frames);
    };

    // Converts every frame the decoder has ready; false once max_frames are there.
    const auto receive_frames = [&] {
        for (;;) {
            const int ret = avcodec_receive_frame(decoder.get(), frame.get());
            if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return true;
            check_av(ret, "cannot decode a frame of", path);
            RgbImage image;
            image.width = frame->width;
            image.height = frame->height;
            image.rgb.resize(static_cast<std::size_t>(frame->width) * 3 * frame->height);
            sws.reset(sws_getCachedContext(
                sws.release(), frame->width, frame->height,
                static_cast<AVPixelFormat>(frame->format), frame->width, frame->height,
                AV_PIX_FMT_RGB24, SWS_BILINEAR | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
            if (!sws) check_av(AVERROR(EINVAL), "cannot convert the frames to RGB of", path);
            // Undo the matrix and range the file is tagged with (BT.601 when untagged).
            const int* yuv_table = sws_getCoefficients(frame->colorspace);
            const int full_range = frame->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
            check_av(sws_setColorspaceDetails(sws.get(), yuv_table, full_range,
                                              sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16,
                                              1 << 16),
                     "cannot convert the frames to RGB of", path);
            std::uint8_t* const dst[1] = {image.rgb.data()};
            const int dst_stride[1] = {frame->width * 3};
            check_av(sws_scale(sws.get(), frame->data, frame->linesize, 0, frame->height, dst,
                               dst_stride),
                     "cannot convert the frames to RGB of", path);
            av_frame_unref(frame.get());
            images.push_back(std::move(image));
            if (!want_more()) return false;
        }
    };

    bool more = want_more();
    while (more && av_read_frame(in.context.get(), packet.get()) >= 0) {
        // A packet cut short at the end of a truncated file is skipped, like probe_mp4 does.
        if (packet->stream_index == in.stream->index && !(packet->flags & AV_PKT_FLAG_CORRUPT)) {
            check_av(avcodec_send_packet(decoder.get(), packet.get()), "cannot decode a packet of",
                     path);
            more = receive_frames();
        }
        av_packet_unref(packet.get());
    }
    if (more) {
        check_av(avcodec_send_packet(decoder.get(), nullptr), "cannot finish decoding", path);
        receive_frames();
    }
    return images;
}

}  // namespace qvg::render
