#include <qvg/render/mp4_probe.h>
#include <qvg/render/recorder.h>

#include "render_test_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>

namespace qvg::render {
namespace {

using test::smooth_pattern;
using Clock = std::chrono::steady_clock;

double to_ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

constexpr int kWidth = 64;
constexpr int kHeight = 48;

RecorderOptions options_for(int width, int height, int ring_slots) {
    RecorderOptions o;
    o.width = width;
    o.height = height;
    o.ring_slots = ring_slots;
    return o;
}

TEST(Recorder, WritesEveryFrameWhenTheRingHasRoom) {
    TempDir dir;
    const auto path = dir.path() / "rec.mp4";
    Recorder recorder(path, options_for(kWidth, kHeight, 64));
    EXPECT_TRUE(recorder.stats().running);
    for (int t = 0; t < 48; ++t)
        EXPECT_TRUE(recorder.push(smooth_pattern(kWidth, kHeight, t).view()));
    recorder.stop();
    const RecorderStats stats = recorder.stats();
    EXPECT_FALSE(stats.running);
    EXPECT_TRUE(stats.error.empty()) << stats.error;
    EXPECT_EQ(stats.frames_pushed, 48);
    EXPECT_EQ(stats.frames_written, 48);
    EXPECT_EQ(stats.frames_dropped, 0);
    EXPECT_EQ(stats.bytes_written, static_cast<std::int64_t>(std::filesystem::file_size(path)));

    const Mp4Info info = probe_mp4(path);
    EXPECT_EQ(info.frame_count, 48);
    EXPECT_EQ(info.width, kWidth);
    EXPECT_EQ(info.height, kHeight);
    ASSERT_EQ(info.pts_s.size(), 48u);
    for (int i = 0; i < 48; ++i) EXPECT_EQ(info.pts_s[static_cast<std::size_t>(i)], i / 16.0);
    const std::vector<RgbImage> frames = decode_mp4_rgb(path, 1);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_GT(test::psnr_db(frames[0].rgb, smooth_pattern(kWidth, kHeight, 0).rgb), 30.0);
}

// A consumer held up inside the encoder thread: with 3 slots, the first 3 frames wait in the ring
// and every later one is dropped at once. If push() waited for the encoder it would take the full
// hold-up time (the hook gives up after 2 s so that such a bug fails instead of hanging).
TEST(Recorder, DropsInsteadOfBlockingWhenTheRingIsFull) {
    TempDir dir;
    const auto path = dir.path() / "slow.mp4";
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    RecorderOptions options = options_for(kWidth, kHeight, 3);
    options.before_encode = [released](std::int64_t) {
        released.wait_for(std::chrono::seconds(2));
    };
    Recorder recorder(path, std::move(options));

    constexpr int kPushes = 20;
    int accepted = 0;
    Clock::duration slowest{};
    for (int t = 0; t < kPushes; ++t) {
        const test::Image img = smooth_pattern(kWidth, kHeight, t);
        const auto start = Clock::now();
        accepted += recorder.push(img.view()) ? 1 : 0;
        slowest = std::max(slowest, Clock::now() - start);
    }
    const RecorderStats during = recorder.stats();
    release.set_value();
    recorder.stop();

    // Generous for a loaded machine, yet far below the 2 s a blocking push would take.
    EXPECT_LT(to_ms(slowest), 50.0);
    EXPECT_EQ(accepted, 3);
    EXPECT_EQ(during.frames_dropped, kPushes - 3);
    const RecorderStats stats = recorder.stats();
    EXPECT_TRUE(stats.error.empty()) << stats.error;
    EXPECT_EQ(stats.frames_pushed, kPushes);
    EXPECT_GT(stats.frames_dropped, 0);
    EXPECT_EQ(stats.frames_written + stats.frames_dropped, kPushes);
    EXPECT_EQ(stats.frames_written, 3);
    EXPECT_EQ(probe_mp4(path).frame_count, 3);
}

// No hook: a burst of large frames outruns the encoder and a two-slot ring.
TEST(Recorder, BurstOfPushesDropsAndCountsEveryFrame) {
    TempDir dir;
    const auto path = dir.path() / "burst.mp4";
    constexpr int kW = 320;
    constexpr int kH = 240;
    constexpr int kPushes = 200;
    std::vector<test::Image> images;
    for (int t = 0; t < 8; ++t) images.push_back(smooth_pattern(kW, kH, t));
    Recorder recorder(path, options_for(kW, kH, 2));
    Clock::duration slowest{};
    for (int t = 0; t < kPushes; ++t) {
        const auto start = Clock::now();
        recorder.push(images[static_cast<std::size_t>(t) % images.size()].view());
        slowest = std::max(slowest, Clock::now() - start);
    }
    recorder.stop();
    const RecorderStats stats = recorder.stats();
    EXPECT_TRUE(stats.error.empty()) << stats.error;
    EXPECT_LT(to_ms(slowest), 50.0);
    EXPECT_GT(stats.frames_dropped, 0);
    EXPECT_GT(stats.frames_written, 0);
    EXPECT_EQ(stats.frames_written + stats.frames_dropped, kPushes);
    EXPECT_EQ(probe_mp4(path).frame_count, stats.frames_written);
}

TEST(Recorder, PushAfterStopIsDroppedAndStopIsIdempotent) {
    TempDir dir;
    Recorder recorder(dir.path() / "stopped.mp4", options_for(kWidth, kHeight, 4));
    EXPECT_TRUE(recorder.push(smooth_pattern(kWidth, kHeight, 0).view()));
    recorder.stop();
    EXPECT_FALSE(recorder.push(smooth_pattern(kWidth, kHeight, 1).view()));
    recorder.stop();
    const RecorderStats stats = recorder.stats();
    EXPECT_EQ(stats.frames_written, 1);
    EXPECT_EQ(stats.frames_dropped, 1);
    EXPECT_EQ(probe_mp4(recorder.path()).frame_count, 1);
}

TEST(Recorder, RejectsFramesOfTheWrongSize) {
    TempDir dir;
    Recorder recorder(dir.path() / "sizes.mp4", options_for(kWidth, kHeight, 4));
    EXPECT_THROW(recorder.push(smooth_pattern(kWidth + 2, kHeight, 0).view()), RecorderError);
    EXPECT_TRUE(recorder.push(smooth_pattern(kWidth, kHeight, 0).view()));
}

TEST(Recorder, UnwritablePathThrowsFromTheConstructor) {
    TempDir dir;
    const auto missing = dir.path() / "no-such-dir" / "rec.mp4";
    const std::string message = test::recorder_error_of(
        [&] { Recorder recorder(missing, options_for(kWidth, kHeight, 4)); });
    EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
    EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
    EXPECT_THROW(Recorder(dir.path() / "odd.mp4", options_for(63, 48, 4)), RecorderError);
    EXPECT_THROW(Recorder(dir.path() / "ring.mp4", options_for(kWidth, kHeight, 0)), RecorderError);
}

// A full disk on the encoder thread becomes the stats' error; nothing crashes or throws, every
// pushed frame is counted, and the file keeps what was complete.
TEST(Recorder, FullDiskBecomesTheStatsError) {
    TempDir dir;
    constexpr int kSize = 96;
    constexpr int kPushes = 48;
    const auto path = dir.path() / "full.mp4";
    // 45 kB: the header and the first one-second fragment (about 35 kB) fit, the whole file
    // (about 100 kB) does not.
    const test::ChildResult child = test::run_with_file_size_limit(45000, [&]() -> std::string {
        Recorder recorder(path, options_for(kSize, kSize, kPushes));
        for (int t = 0; t < kPushes; ++t)
            recorder.push(test::scrolling_noise(kSize, kSize, t).view());
        recorder.stop();
        const RecorderStats stats = recorder.stats();
        if (stats.frames_pushed != kPushes ||
            stats.frames_written + stats.frames_dropped != stats.frames_pushed) {
            return "frames were lost from the count";
        }
        if (stats.running) return "still running after the error";
        return stats.error.empty() ? "no error" : stats.error;
    });
    ASSERT_EQ(child.exit_code, 0) << child.output;
    EXPECT_NE(child.output.find(path.string()), std::string::npos) << child.output;
    EXPECT_NE(child.output.find("File too large"), std::string::npos) << child.output;
    const Mp4Info info = probe_mp4(path);
    EXPECT_GE(info.frame_count, 16);
    EXPECT_LT(info.frame_count, kPushes);
}

}  // namespace
}  // namespace qvg::render
