#include <qvg/render/mp4_probe.h>
#include <qvg/render/mp4_writer.h>

#include "render_test_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

extern "C" {
#include <libavutil/log.h>
}

#include <filesystem>
#include <string>

namespace qvg::render {
namespace {

using test::smooth_pattern;

constexpr int kWidth = 64;
constexpr int kHeight = 48;
constexpr int kFrames = 48;
constexpr int kFps = 16;

// libx264 prints statistics for every file at info level; keep warnings and errors only.
class QuietLibav : public ::testing::Environment {
  public:
    void SetUp() override { av_log_set_level(AV_LOG_WARNING); }
};
[[maybe_unused]] ::testing::Environment* const kQuietLibav =
    ::testing::AddGlobalTestEnvironment(new QuietLibav);

void write_pattern(const std::filesystem::path& path, int frames) {
    Mp4Writer writer(path, kWidth, kHeight);
    for (int t = 0; t < frames; ++t) writer.write(smooth_pattern(kWidth, kHeight, t).view());
    writer.close();
}

// pts[i] must be exactly i / fps: pts * num * fps == i * den in integers.
void expect_exact_timestamps(const Mp4Info& info, int fps) {
    for (std::size_t i = 0; i < info.pts.size(); ++i) {
        EXPECT_EQ(info.pts[i] * info.time_base_num * fps,
                  static_cast<std::int64_t>(i) * info.time_base_den)
            << "frame " << i << " pts " << info.pts[i] << " in " << info.time_base_num << "/"
            << info.time_base_den;
        EXPECT_EQ(info.pts_s[i], static_cast<double>(i) / fps) << "frame " << i;
    }
}

TEST(Mp4Writer, WritesEveryFrameWithExactTimestamps) {
    TempDir dir;
    const auto path = dir.path() / "pattern.mp4";
    write_pattern(path, kFrames);

    const Mp4Info info = probe_mp4(path);
    EXPECT_EQ(info.frame_count, kFrames);
    EXPECT_EQ(info.width, kWidth);
    EXPECT_EQ(info.height, kHeight);
    EXPECT_EQ(info.codec_name, "h264");
    EXPECT_EQ(info.pix_fmt, "yuv420p");
    EXPECT_DOUBLE_EQ(info.fps, kFps);
    EXPECT_DOUBLE_EQ(info.duration_s, static_cast<double>(kFrames) / kFps);
    ASSERT_EQ(info.pts.size(), static_cast<std::size_t>(kFrames));
    expect_exact_timestamps(info, kFps);
}

TEST(Mp4Writer, KeepsTheFrameRateItWasGiven) {
    TempDir dir;
    const auto path = dir.path() / "30fps.mp4";
    {
        Mp4Writer writer(path, kWidth, kHeight, 30);
        for (int t = 0; t < 10; ++t) writer.write(smooth_pattern(kWidth, kHeight, t).view());
        writer.close();
        EXPECT_EQ(writer.frames_written(), 10);
        EXPECT_EQ(writer.bytes_written(),
                  static_cast<std::int64_t>(std::filesystem::file_size(path)));
    }
    const Mp4Info info = probe_mp4(path);
    EXPECT_EQ(info.frame_count, 10);
    EXPECT_DOUBLE_EQ(info.fps, 30.0);
    expect_exact_timestamps(info, 30);
}

TEST(Mp4Writer, DecodedFramesMatchTheInput) {
    TempDir dir;
    const auto path = dir.path() / "pattern.mp4";
    write_pattern(path, kFrames);

    const std::vector<RgbImage> frames = decode_mp4_rgb(path);
    ASSERT_EQ(frames.size(), static_cast<std::size_t>(kFrames));
    for (int t = 0; t < kFrames; ++t) {
        const RgbImage& got = frames[static_cast<std::size_t>(t)];
        ASSERT_EQ(got.width, kWidth);
        ASSERT_EQ(got.height, kHeight);
        const double psnr = test::psnr_db(got.rgb, smooth_pattern(kWidth, kHeight, t).rgb);
        EXPECT_GT(psnr, 30.0) << "frame " << t;
    }
    // A different frame of the pattern must compare worse: the check can tell frames apart.
    EXPECT_LT(test::psnr_db(frames[0].rgb, smooth_pattern(kWidth, kHeight, 12).rgb), 20.0);
}

TEST(Mp4Writer, HonoursTheInputStride) {
    TempDir dir;
    const auto path = dir.path() / "stride.mp4";
    const test::Image img = smooth_pattern(kWidth, kHeight, 5);
    const int stride = kWidth * 3 + 20;  // rows padded as a GPU readback might leave them
    std::vector<std::uint8_t> padded(static_cast<std::size_t>(stride) * kHeight, 0xff);
    for (int y = 0; y < kHeight; ++y) {
        std::copy_n(img.rgb.begin() + y * kWidth * 3, kWidth * 3, padded.begin() + y * stride);
    }
    {
        Mp4Writer writer(path, kWidth, kHeight);
        writer.write(FrameView{padded.data(), kWidth, kHeight, stride});
        writer.close();
    }
    const std::vector<RgbImage> frames = decode_mp4_rgb(path);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_GT(test::psnr_db(frames[0].rgb, img.rgb), 30.0);
}

TEST(Mp4Writer, RejectsOddSizesClearly) {
    TempDir dir;
    const std::string message =
        test::recorder_error_of([&] { Mp4Writer writer(dir.path() / "odd.mp4", 65, 48); });
    EXPECT_NE(message.find("even"), std::string::npos) << message;
    EXPECT_NE(message.find("65x48"), std::string::npos) << message;
    EXPECT_THROW(Mp4Writer(dir.path() / "odd.mp4", 64, 47), RecorderError);
    EXPECT_THROW(Mp4Writer(dir.path() / "zero.mp4", 0, 48), RecorderError);
    EXPECT_THROW(Mp4Writer(dir.path() / "fps.mp4", 64, 48, 0), RecorderError);
}

TEST(Mp4Writer, RejectsAFrameOfTheWrongSizeAndCarriesOn) {
    TempDir dir;
    const auto path = dir.path() / "sizes.mp4";
    Mp4Writer writer(path, kWidth, kHeight);
    writer.write(smooth_pattern(kWidth, kHeight, 0).view());
    const std::string message =
        test::recorder_error_of([&] { writer.write(smooth_pattern(32, 24, 1).view()); });
    EXPECT_NE(message.find("32x24"), std::string::npos) << message;
    EXPECT_NE(message.find("64x48"), std::string::npos) << message;
    EXPECT_THROW(writer.write(FrameView{nullptr, kWidth, kHeight, kWidth * 3}), RecorderError);
    writer.write(smooth_pattern(kWidth, kHeight, 1).view());
    writer.close();
    EXPECT_TRUE(writer.error().empty()) << writer.error();
    EXPECT_EQ(probe_mp4(path).frame_count, 2);
    EXPECT_THROW(writer.write(smooth_pattern(kWidth, kHeight, 2).view()), RecorderError);
}

TEST(Mp4Writer, UnwritablePathsGiveAClearError) {
    TempDir dir;
    const auto missing = dir.path() / "no-such-dir" / "out.mp4";
    const std::string message =
        test::recorder_error_of([&] { Mp4Writer writer(missing, kWidth, kHeight); });
    EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
    EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
    EXPECT_FALSE(std::filesystem::exists(missing));

    // A directory where the file should be (unlike permissions, this also holds for root).
    const auto is_dir = dir.path() / "a-directory";
    std::filesystem::create_directory(is_dir);
    const std::string dir_message =
        test::recorder_error_of([&] { Mp4Writer writer(is_dir, kWidth, kHeight); });
    EXPECT_NE(dir_message.find(is_dir.string()), std::string::npos) << dir_message;
    EXPECT_NE(dir_message.find("Is a directory"), std::string::npos) << dir_message;
}

TEST(Mp4Writer, FileIsPlayableBeforeClose) {
    TempDir dir;
    const auto path = dir.path() / "open.mp4";
    Mp4Writer writer(path, kWidth, kHeight);
    for (int t = 0; t < 40; ++t) writer.write(smooth_pattern(kWidth, kHeight, t).view());
    // Not closed: the fragments finished so far (one a second, 16 frames) are already readable.
    const Mp4Info partial = probe_mp4(path);
    EXPECT_GE(partial.frame_count, kFps);
    EXPECT_EQ(partial.frame_count % kFps, 0) << partial.frame_count;
    EXPECT_EQ(partial.width, kWidth);
    expect_exact_timestamps(partial, kFps);
    writer.close();
    EXPECT_EQ(probe_mp4(path).frame_count, 40);
}

// A full disk, simulated by a file size limit in a child process: the writer reports the error,
// refuses further frames, and the file still holds every fragment that was complete before.
TEST(Mp4Writer, FullDiskLeavesAPlayableFileAndAClearError) {
    TempDir dir;
    constexpr int kSize = 96;  // scrolling noise: about 100 kB for 48 frames, 35 kB a fragment
    const auto reference = dir.path() / "reference.mp4";
    {
        Mp4Writer writer(reference, kSize, kSize);
        for (int t = 0; t < kFrames; ++t)
            writer.write(test::scrolling_noise(kSize, kSize, t).view());
        writer.close();
    }
    const auto full_size = std::filesystem::file_size(reference);
    const auto limit = full_size / 2;

    // What a plain cut of the complete file at the limit still holds.
    const auto cut = dir.path() / "cut.mp4";
    write_file(cut, read_file(reference).substr(0, limit));
    const Mp4Info cut_info = probe_mp4(cut);
    ASSERT_GT(cut_info.frame_count, 0) << "the limit leaves no complete fragment; test too small";
    ASSERT_LT(cut_info.frame_count, kFrames);

    const auto limited = dir.path() / "limited.mp4";
    const test::ChildResult child = test::run_with_file_size_limit(limit, [&]() -> std::string {
        Mp4Writer writer(limited, kSize, kSize);
        std::string first_error;
        for (int t = 0; t < kFrames && first_error.empty(); ++t) {
            try {
                writer.write(test::scrolling_noise(kSize, kSize, t).view());
            } catch (const RecorderError& e) {
                first_error = e.what();
            }
        }
        if (first_error.empty()) {
            try {
                writer.close();
            } catch (const RecorderError& e) {
                first_error = e.what();
            }
        }
        if (first_error.empty()) return "no error";
        // Stopped for good: another frame gives the same error, close() adds nothing.
        try {
            writer.write(test::scrolling_noise(kSize, kSize, 0).view());
            return "a frame was accepted after the error";
        } catch (const RecorderError& e) {
            if (e.what() != first_error) return std::string("a different error: ") + e.what();
        }
        writer.close();
        return first_error;
    });
    ASSERT_EQ(child.exit_code, 0) << child.output;
    EXPECT_NE(child.output.find(limited.string()), std::string::npos) << child.output;
    EXPECT_NE(child.output.find("File too large"), std::string::npos) << child.output;

    ASSERT_TRUE(std::filesystem::exists(limited));
    EXPECT_LE(std::filesystem::file_size(limited), limit);
    const Mp4Info info = probe_mp4(limited);
    EXPECT_GE(info.frame_count, cut_info.frame_count);
    EXPECT_LT(info.frame_count, kFrames);
    EXPECT_EQ(info.width, kSize);
    EXPECT_EQ(info.codec_name, "h264");
    expect_exact_timestamps(info, kFps);
    // Playable: the frames that are there decode.
    EXPECT_GE(static_cast<std::int64_t>(decode_mp4_rgb(limited).size()), cut_info.frame_count);
}

TEST(Mp4Probe, MissingOrBrokenFilesGiveAClearError) {
    TempDir dir;
    const auto missing = dir.path() / "missing.mp4";
    const std::string message = test::recorder_error_of([&] { probe_mp4(missing); });
    EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
    const auto junk = dir.path() / "junk.mp4";
    write_file(junk, std::string(1000, 'x'));
    EXPECT_THROW(probe_mp4(junk), RecorderError);
}

}  // namespace
}  // namespace qvg::render
