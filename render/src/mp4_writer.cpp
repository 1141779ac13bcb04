// Design note: how Mp4Writer keeps a recording playable.
//
// A plain MP4 keeps its index (the moov box) at the end: until av_write_trailer has run, the file
// cannot be played at all, and "+faststart" makes this worse, because it rewrites the whole file at
// the end and needs the disk space twice. A recorder is stopped by whatever happens to the
// program: a full disk, a crash, a kill. So the writer produces a fragmented MP4 instead (movflags
// frag_keyframe+empty_moov): an empty moov with the stream description comes first, then one
// self-contained moof+mdat fragment per keyframe. Every complete fragment on disk is playable
// without the trailer; close() adds the last fragment and the mfra random-access index. faststart
// is not needed because the moov is already at the front. Players, browsers and libavformat read
// such files.
//
// What may be lost is bounded by the keyframe interval: the writer asks for a keyframe every
// second (gop = fps), so a cut-off file loses at most about one second plus the encoder's
// lookahead. Packets are flushed to the operating system as soon as the muxer emits them
// (AVFMT_FLAG_FLUSH_PACKETS), so a finished fragment does not wait in a user-space buffer.
//
// No B-frames: presentation order equals decode order, so every packet's pts is exactly its frame
// index in the 1/fps time base (the muxer only rescales it to a multiple of that base), the first
// frame is at 0 without an edit list, and a file cut anywhere holds a run of decodable frames with
// no gap in presentation order. At crf 18 the cost in size is small for a local recording.
//
// Colour: RGB is converted with the BT.709 matrix into limited-range yuv420p, and the stream is
// tagged so, so that players do not guess BT.601 for small sizes or BT.709 for large ones.
//
// Errors: every libav call is checked. The first failure in write() (a full disk gives ENOSPC, a
// file size limit EFBIG) stops the writer: it tries the trailer (which also writes out a pending
// fragment if the failure came from the encoder rather than the disk), closes the file, keeps the
// message and throws it. Fragments already on disk stay playable.

#include <qvg/render/mp4_writer.h>

#include "av_util.h"

#include <fmt/format.h>

#include <utility>

namespace qvg::render {

using detail::check_av;

struct Mp4Writer::State {
    std::filesystem::path path;
    int width = 0;
    int height = 0;
    int fps = 0;

    AVFormatContext* mux = nullptr;  // owned; released by release()
    AVStream* stream = nullptr;      // owned by mux
    detail::CodecContextPtr encoder;
    detail::FramePtr yuv;
    detail::PacketPtr packet;
    detail::SwsPtr sws;

    std::int64_t frames = 0;
    std::int64_t bytes = 0;
    std::string error;
    bool open = false;
    bool trailer_tried = false;  // av_write_trailer must run at most once

    ~State() { release(); }

    // Frees all libav state; closes the file without writing anything more.
    void release() {
        if (mux) {
            if (mux->pb) avio_closep(&mux->pb);
            avformat_free_context(mux);
            mux = nullptr;
            stream = nullptr;
        }
        sws.reset();
        packet.reset();
        yuv.reset();
        encoder.reset();
        open = false;
    }

    void update_bytes() {
        if (mux && mux->pb) bytes = avio_tell(mux->pb);
    }

    // Moves every packet the encoder has ready into the file.
    void drain_encoder() {
        for (;;) {
            const int ret = avcodec_receive_packet(encoder.get(), packet.get());
            if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
            check_av(ret, "the H.264 encoder failed while recording", path);
            // Constant frame rate and no B-frames: each packet lasts one frame.
            if (packet->duration <= 0) packet->duration = 1;
            av_packet_rescale_ts(packet.get(), encoder->time_base, stream->time_base);
            packet->stream_index = stream->index;
            const int written = av_write_frame(mux, packet.get());
            av_packet_unref(packet.get());
            check_av(written, "cannot write to", path);
            update_bytes();
        }
    }

    // After the first failure: keep the message, save what can be saved, free everything.
    void fail(const std::string& message) {
        error = message + " (recording stopped; the file keeps every complete fragment)";
        if (mux) {
            // Both may fail again on a full disk; the first error is the one that is reported.
            if (!trailer_tried) {
                trailer_tried = true;
                av_write_trailer(mux);
            }
            update_bytes();
            if (mux->pb) avio_closep(&mux->pb);
        }
        release();
    }
};

Mp4Writer::Mp4Writer(const std::filesystem::path& path, int width, int height, int fps)
    : state_(std::make_unique<State>()) {
    State& s = *state_;
    s.path = path;
    s.width = width;
    s.height = height;
    s.fps = fps;
    if (width <= 0 || height <= 0 || width % 2 != 0 || height % 2 != 0) {
        throw RecorderError(fmt::format(
            "cannot record '{}': yuv420p H.264 needs a positive, even width and height, got {}x{} "
            "(crop or pad the frames by one pixel)",
            path.string(), width, height));
    }
    if (fps < 1 || fps > 1000) {
        throw RecorderError(fmt::format("cannot record '{}': fps must be in [1, 1000], got {}",
                                        path.string(), fps));
    }

    check_av(avformat_alloc_output_context2(&s.mux, nullptr, "mp4", nullptr),
             "cannot set up the MP4 muxer for", path);

    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) {
        throw RecorderError(fmt::format(
            "cannot record '{}': this libavcodec has no libx264 encoder", path.string()));
    }
    s.encoder.reset(avcodec_alloc_context3(codec));
    if (!s.encoder) check_av(AVERROR(ENOMEM), "cannot allocate the H.264 encoder for", path);
    AVCodecContext* enc = s.encoder.get();
    enc->width = width;
    enc->height = height;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->time_base = AVRational{1, fps};
    enc->framerate = AVRational{fps, 1};
    enc->gop_size = fps;  // one keyframe, hence one fragment, per second
    enc->max_b_frames = 0;
    enc->color_range = AVCOL_RANGE_MPEG;
    enc->colorspace = AVCOL_SPC_BT709;
    enc->color_primaries = AVCOL_PRI_BT709;
    enc->color_trc = AVCOL_TRC_IEC61966_2_1;  // RGB frames are sRGB
    if (s.mux->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

    AVDictionary* codec_options = nullptr;
    check_av(av_dict_set(&codec_options, "preset", "veryfast", 0), "cannot set options for", path);
    check_av(av_dict_set(&codec_options, "crf", "18", 0), "cannot set options for", path);
    const int opened = avcodec_open2(enc, codec, &codec_options);
    av_dict_free(&codec_options);
    check_av(opened, "cannot open the H.264 encoder (libx264) for", path);

    s.stream = avformat_new_stream(s.mux, nullptr);
    if (!s.stream) check_av(AVERROR(ENOMEM), "cannot add a video stream to", path);
    s.stream->time_base = enc->time_base;
    s.stream->avg_frame_rate = enc->framerate;
    check_av(avcodec_parameters_from_context(s.stream->codecpar, enc),
             "cannot describe the video stream of", path);

    check_av(avio_open2(&s.mux->pb, path.c_str(), AVIO_FLAG_WRITE, nullptr, nullptr),
             "cannot open for writing", path);
    s.mux->flags |= AVFMT_FLAG_FLUSH_PACKETS;

    AVDictionary* mux_options = nullptr;
    check_av(av_dict_set(&mux_options, "movflags", "frag_keyframe+empty_moov", 0),
             "cannot set options for", path);
    const int header = avformat_write_header(s.mux, &mux_options);
    av_dict_free(&mux_options);
    check_av(header, "cannot write the MP4 header to", path);
    avio_flush(s.mux->pb);
    check_av(s.mux->pb->error, "cannot write the MP4 header to", path);
    s.update_bytes();

    s.yuv = detail::alloc_frame(path);
    s.yuv->format = AV_PIX_FMT_YUV420P;
    s.yuv->width = width;
    s.yuv->height = height;
    s.yuv->color_range = enc->color_range;
    s.yuv->colorspace = enc->colorspace;
    s.yuv->color_primaries = enc->color_primaries;
    s.yuv->color_trc = enc->color_trc;
    check_av(av_frame_get_buffer(s.yuv.get(), 0), "cannot allocate a frame for", path);
    s.packet = detail::alloc_packet(path);

    s.sws.reset(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                               SWS_BILINEAR | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
    if (!s.sws) check_av(AVERROR(EINVAL), "cannot set up RGB to yuv420p conversion for", path);
    // Source range and table are ignored for RGB input; the destination is BT.709, limited range.
    const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
    check_av(sws_setColorspaceDetails(s.sws.get(), bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16),
             "cannot set up RGB to yuv420p conversion for", path);
    s.open = true;
}

Mp4Writer::~Mp4Writer() {
    try {
        close();
    } catch (const RecorderError&) {
        // Destructors must not throw; close() reports the same error to those who ask.
    }
}

void Mp4Writer::write(const FrameView& frame) {
    State& s = *state_;
    if (!s.open) {
        if (!s.error.empty()) throw RecorderError(s.error);
        throw RecorderError(
            fmt::format("cannot write to '{}': the writer is closed", s.path.string()));
    }
    if (frame.width != s.width || frame.height != s.height) {
        throw RecorderError(
            fmt::format("cannot write a {}x{} frame to '{}': the recording is {}x{}", frame.width,
                        frame.height, s.path.string(), s.width, s.height));
    }
    if (!frame.data || frame.stride_bytes < frame.width * 3) {
        throw RecorderError(fmt::format(
            "cannot write a frame to '{}': expected RGB8 data with a stride of at least {} bytes, "
            "got {} with stride {}",
            s.path.string(), frame.width * 3, frame.data ? "data" : "no data", frame.stride_bytes));
    }
    try {
        check_av(av_frame_make_writable(s.yuv.get()), "cannot reuse the frame buffer for", s.path);
        const std::uint8_t* const src[1] = {frame.data};
        const int src_stride[1] = {frame.stride_bytes};
        check_av(sws_scale(s.sws.get(), src, src_stride, 0, s.height, s.yuv->data, s.yuv->linesize),
                 "cannot convert a frame to yuv420p for", s.path);
        s.yuv->pts = s.frames;
        check_av(avcodec_send_frame(s.encoder.get(), s.yuv.get()),
                 "the H.264 encoder failed while recording", s.path);
        ++s.frames;
        s.drain_encoder();
    } catch (const RecorderError& e) {
        s.fail(e.what());
        throw RecorderError(s.error);
    }
}

void Mp4Writer::close() {
    State& s = *state_;
    if (!s.open) return;
    try {
        check_av(avcodec_send_frame(s.encoder.get(), nullptr),
                 "the H.264 encoder failed while finishing", s.path);
        s.drain_encoder();
        s.trailer_tried = true;
        check_av(av_write_trailer(s.mux), "cannot finish the MP4 file", s.path);
        s.update_bytes();
        check_av(avio_closep(&s.mux->pb), "cannot close", s.path);
    } catch (const RecorderError& e) {
        s.fail(e.what());
        throw RecorderError(s.error);
    }
    s.release();
}

bool Mp4Writer::is_open() const { return state_->open; }
std::int64_t Mp4Writer::frames_written() const { return state_->frames; }
std::int64_t Mp4Writer::bytes_written() const { return state_->bytes; }
const std::string& Mp4Writer::error() const { return state_->error; }
const std::filesystem::path& Mp4Writer::path() const { return state_->path; }
int Mp4Writer::width() const { return state_->width; }
int Mp4Writer::height() const { return state_->height; }
int Mp4Writer::fps() const { return state_->fps; }

}  // namespace qvg::render
