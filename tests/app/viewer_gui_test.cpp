// qvg-world under Xvfb: a real window, keys and mouse motion sent with xdotool, screenshots taken
// through the viewer's own F12 (the viewport as drawn, overlays included) and compared.

#include "process.h"

#include <qvg/core/safetensors.h>
#include <qvg/core/world_model.h>
#include <qvg/input/trajectory.h>
#include <qvg/render/mp4_probe.h>
#include <qvg/world/dataset.h>
#include <qvg/world/walks.h>
#include <qvg/world/world.h>

#include <gtest/gtest.h>

// Before Qt, whose `slots` keyword macro breaks ATen's headers.
#include <ATen/ATen.h>

#include <QImage>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace qvg::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path fresh_dir(const std::string& name) {
    const fs::path dir = fs::path(QVG_BINARY_DIR) / "tests" / "app" / "work" / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    // Each run gets its own settings, so that one test's choices do not leak into the next.
    setenv("XDG_CONFIG_HOME", (dir / "config").c_str(), 1);
    return dir;
}

QImage load_rgb(const fs::path& path) {
    QImage image(QString::fromStdString(path.string()));
    return image.convertToFormat(QImage::Format_RGB888);
}

// Fraction of pixels inside [x0, x1) x [y0, y1) whose largest channel difference exceeds tol.
double diff_fraction(const QImage& a, const QImage& b, int x0, int y0, int x1, int y1,
                     int tol = 8) {
    EXPECT_EQ(a.size(), b.size());
    if (a.size() != b.size()) return 1.0;
    std::int64_t differ = 0, total = 0;
    for (int y = y0; y < y1; ++y) {
        const uchar* pa = a.constScanLine(y);
        const uchar* pb = b.constScanLine(y);
        for (int x = x0; x < x1; ++x) {
            int d = 0;
            for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(pa[3 * x + c] - pb[3 * x + c]));
            differ += d > tol ? 1 : 0;
            ++total;
        }
    }
    return total > 0 ? static_cast<double>(differ) / static_cast<double>(total) : 0.0;
}

// Standard deviation of the green channel over a region: near 0 for an empty background.
double spread(const QImage& img, int x0, int y0, int x1, int y1) {
    double sum = 0, sq = 0;
    std::int64_t n = 0;
    for (int y = y0; y < y1; ++y) {
        const uchar* p = img.constScanLine(y);
        for (int x = x0; x < x1; ++x) {
            const double v = p[3 * x + 1];
            sum += v;
            sq += v * v;
            ++n;
        }
    }
    const double mean = sum / static_cast<double>(n);
    return std::sqrt(std::max(0.0, sq / static_cast<double>(n) - mean * mean));
}

std::vector<fs::path> pngs_in(const fs::path& dir) {
    std::vector<fs::path> out;
    if (!fs::exists(dir)) return out;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() == ".png") out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// A running viewer window.
class Viewer {
  public:
    Viewer(const fs::path& dir, std::vector<std::string> extra) : shots_(dir / "shots") {
        std::vector<std::string> argv = {QVG_WORLD, "--screenshot-dir", shots_.string()};
        argv.insert(argv.end(), extra.begin(), extra.end());
        log_ = dir / "viewer.log";
        process_ = std::make_unique<Process>(argv, log_);
        window_ = find_window("^qvg-world$", 90s, true);
    }

    const std::string& window() const { return window_; }
    Process& process() { return *process_; }
    std::string log() const { return shell("cat '" + log_.string() + "'"); }

    void focus() { shell("xdotool windowfocus --sync " + window_ + " 2>/dev/null"); }
    void key(const std::string& keys) {
        focus();
        shell("xdotool key --clearmodifiers " + keys);
    }
    void hold(const std::string& key, std::chrono::milliseconds how_long) {
        focus();
        shell("xdotool keydown " + key);
        std::this_thread::sleep_for(how_long);
        shell("xdotool keyup " + key);
    }

    // F12, then the new PNG once it can be read.
    QImage screenshot() {
        const std::size_t before = pngs_in(shots_).size();
        key("F12");
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < deadline) {
            const auto files = pngs_in(shots_);
            if (files.size() > before) {
                std::this_thread::sleep_for(200ms);
                QImage img = load_rgb(files.back());
                if (!img.isNull()) return img;
            }
            std::this_thread::sleep_for(100ms);
        }
        ADD_FAILURE() << "no screenshot appeared in " << shots_;
        return {};
    }

    // Screenshots until the model pane (left third, middle rows) shows a picture.
    QImage wait_for_frames() {
        const auto deadline = std::chrono::steady_clock::now() + 120s;
        while (std::chrono::steady_clock::now() < deadline) {
            QImage img = screenshot();
            if (img.isNull()) break;
            if (spread(img, img.width() / 6, img.height() / 3, img.width() / 3,
                       2 * img.height() / 3) > 10.0) {
                return img;
            }
            std::this_thread::sleep_for(1s);
        }
        ADD_FAILURE() << "the viewer showed no frames; log:\n" << log();
        return {};
    }

  private:
    fs::path shots_;
    fs::path log_;
    std::unique_ptr<Process> process_;
    std::string window_;
};

TEST(ViewerGui, KeysAndMouseMoveTheCameraAndOverlaysAreDrawn) {
    const fs::path dir = fresh_dir("input");
    Viewer v(dir, {"--hide-overlays", "--seed", "5"});
    ASSERT_FALSE(v.window().empty()) << "no qvg-world window; log:\n" << v.log();
    const QImage first = v.wait_for_frames();
    ASSERT_FALSE(first.isNull());
    const int w = first.width(), h = first.height();
    // Without overlays the panes sit side by side: model left, ground truth right.
    const auto left = [&](const QImage& a, const QImage& b) {
        return diff_fraction(a, b, 0, 0, w / 2 - 8, h);
    };
    const auto right = [&](const QImage& a, const QImage& b) {
        return diff_fraction(a, b, w / 2 + 8, 0, w, h);
    };

    std::this_thread::sleep_for(1500ms);
    const QImage idle = v.screenshot();
    EXPECT_GT(left(first, idle), 0.05) << "the model pane did not change over 1.5 s";
    EXPECT_LT(right(first, idle), 0.001) << "the ground truth moved without input";

    v.hold("w", 2500ms);
    std::this_thread::sleep_for(1500ms);
    const QImage walked = v.screenshot();
    EXPECT_GT(right(idle, walked), 0.05) << "holding W did not move the camera";

    // Click captures the pointer; motion then turns the camera.
    v.focus();
    shell("xdotool mousemove --window " + v.window() + " 640 400 click 1");
    std::this_thread::sleep_for(300ms);
    for (int i = 0; i < 25; ++i) {
        shell("xdotool mousemove_relative -- 12 0");
        std::this_thread::sleep_for(40ms);
    }
    std::this_thread::sleep_for(2000ms);
    v.key("Escape");
    const QImage turned = v.screenshot();
    EXPECT_GT(right(walked, turned), 0.05) << "mouse motion did not turn the camera";

    // Paused, the frame is still; F2 shows the overlays, which must change what is drawn.
    v.key("F5");
    std::this_thread::sleep_for(1500ms);
    const QImage paused_a = v.screenshot();
    std::this_thread::sleep_for(500ms);
    const QImage paused_b = v.screenshot();
    EXPECT_LT(diff_fraction(paused_a, paused_b, 0, 0, w, h), 0.001) << "pausing did not pause";
    v.key("F2");
    std::this_thread::sleep_for(500ms);
    const QImage overlays = v.screenshot();
    // The left column holds the memory panel: dark panel and text over what was a frame.
    EXPECT_GT(diff_fraction(paused_b, overlays, 10, 10, 330, h / 2), 0.3)
        << "the overlay panels were not drawn";
    EXPECT_TRUE(v.process().running()) << v.log();
    v.key("ctrl+q");
    const auto code = v.process().wait(30s);
    ASSERT_TRUE(code.has_value()) << "Ctrl+Q did not quit";
    EXPECT_EQ(*code, 0) << v.log();
}

TEST(ViewerGui, HeadlessScreenshotHasOverlays) {
    const fs::path dir = fresh_dir("headless");
    const auto with = run({QVG_WORLD, "--headless-screenshot", (dir / "on.png").string(),
                           "--frames", "24", "--seed", "2"},
                          180s);
    ASSERT_EQ(with.exit_code, 0) << with.output;
    const auto without = run({QVG_WORLD, "--headless-screenshot", (dir / "off.png").string(),
                              "--frames", "24", "--seed", "2", "--hide-overlays"},
                             180s);
    ASSERT_EQ(without.exit_code, 0) << without.output;
    const QImage on = load_rgb(dir / "on.png");
    const QImage off = load_rgb(dir / "off.png");
    ASSERT_EQ(on.width(), 1280);
    ASSERT_EQ(on.height(), 720);
    EXPECT_GT(diff_fraction(on, off, 10, 10, 330, 360), 0.3);
    EXPECT_GT(diff_fraction(on, off, 950, 10, 1270, 360), 0.3);
    EXPECT_GT(spread(off, 100, 200, 600, 500), 10.0) << "no frame drawn without overlays";
}

TEST(ViewerGui, RecordsThreeSecondsOfMp4) {
    const fs::path dir = fresh_dir("record");
    const fs::path mp4 = dir / "out.mp4";
    // 48 frames at 16 fps: three seconds. --frames makes the viewer exit by itself.
    Viewer v(dir, {"--record", mp4.string(), "--frames", "48", "--fps", "16"});
    ASSERT_FALSE(v.window().empty()) << v.log();
    const auto code = v.process().wait(240s);
    ASSERT_TRUE(code.has_value()) << "the viewer did not exit after --frames 48\n" << v.log();
    ASSERT_EQ(*code, 0) << v.log();
    const render::Mp4Info info = render::probe_mp4(mp4);
    EXPECT_EQ(info.codec_name, "h264");
    EXPECT_EQ(info.pix_fmt, "yuv420p");
    // The built-in world model's 64 x 64 frames (not the test model's shown while it loads).
    EXPECT_EQ(info.width, 64);
    EXPECT_EQ(info.height, 64);
    // The ring drops rather than block; on an idle machine it keeps every frame.
    EXPECT_GE(info.frame_count, 44);
    EXPECT_LE(info.frame_count, 48);
    EXPECT_NEAR(info.duration_s, static_cast<double>(info.frame_count) / 16.0, 0.07);
    EXPECT_EQ(render::decode_mp4_rgb(mp4, 2).size(), 2u);
}

TEST(ViewerGui, UnwritableRecordingPathIsAnErrorNotACrash) {
    const fs::path dir = fresh_dir("record-bad");
    Viewer v(dir, {"--record", "/proc/qvg-cannot-write-here/out.mp4"});
    ASSERT_FALSE(v.window().empty()) << v.log();
    const std::string dialog = find_window("cannot record", 60s);
    EXPECT_FALSE(dialog.empty()) << "no error dialog; log:\n" << v.log();
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(v.process().running()) << v.log();
}

input::Trajectory walk(std::uint64_t seed, int latents) {
    world::World w(world::WorldConfig{.seed = seed});
    world::ClipOptions options;
    options.render.width = 256;
    options.render.height = 160;
    options.draw = false;
    input::ActionStep step;
    const auto actions = world::random_walk(seed, {.latents = latents}, step);
    return world::make_clip(w, w.spawn(), actions, options).trajectory(seed);
}

TEST(ViewerGui, ReplayingATrajectoryTwiceGivesIdenticalFrames) {
    const fs::path dir = fresh_dir("replay");
    input::save_trajectory(dir / "walk.json", walk(11, 12));
    input::save_trajectory(dir / "other.json", walk(12, 12));
    const auto replay = [&](const std::string& file, const std::string& name) {
        const auto r = run({QVG_WORLD, "--replay", (dir / file).string(), "--frames", "36",
                            "--hide-overlays", "--record", (dir / (name + ".mp4")).string(),
                            "--headless-screenshot", (dir / (name + ".png")).string()},
                           240s);
        EXPECT_EQ(r.exit_code, 0) << r.output;
        return render::decode_mp4_rgb(dir / (name + ".mp4"));
    };
    const auto a = replay("walk.json", "a");
    const auto b = replay("walk.json", "b");
    ASSERT_EQ(a.size(), 36u);
    ASSERT_EQ(b.size(), a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].rgb, b[i].rgb) << "frame " << i << " differs between the two replays";
    }
    const QImage pa = load_rgb(dir / "a.png");
    const QImage pb = load_rgb(dir / "b.png");
    EXPECT_EQ(diff_fraction(pa, pb, 0, 0, pa.width(), pa.height(), 0), 0.0);
    // Another walk with another seed must not give the same pictures.
    replay("other.json", "c");
    const QImage pc = load_rgb(dir / "c.png");
    EXPECT_GT(diff_fraction(pa, pc, pa.width() / 2, 0, pa.width(), pa.height()), 0.05);
}

TEST(ViewerGui, BadModelPathShowsAnErrorAndKeepsRunning) {
    const fs::path dir = fresh_dir("bad-model");
    Viewer v(dir, {"--model", (dir / "missing.pt").string(), "--text-embedding",
                   (dir / "missing.safetensors").string()});
    ASSERT_FALSE(v.window().empty()) << v.log();
    const std::string dialog = find_window("cannot open the model", 90s);
    EXPECT_FALSE(dialog.empty()) << "no error dialog; log:\n" << v.log();
    EXPECT_NE(v.log().find("does not exist"), std::string::npos) << v.log();
    // Dismiss the message; the built-in model keeps running.
    shell("xdotool windowfocus --sync " + dialog + " 2>/dev/null; xdotool key Return");
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(v.process().running()) << v.log();
    EXPECT_FALSE(v.wait_for_frames().isNull());

    // The same mistake without a window is an exit code and a message.
    const auto r = run(
        {QVG_WORLD, "--model", (dir / "missing.pt").string(), "--text-embedding",
         (dir / "missing.safetensors").string(), "--headless-screenshot", (dir / "x.png").string()},
        60s);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir / "x.png"));
}

// A tiny world model (16x16 frames, 2 per latent, one latent a block) with seeded weights.
fs::path write_tiny_world_model(const fs::path& dir) {
    const core::WorldModelConfig config = core::WorldModelConfig::tiny();
    const core::WorldModel model(config, core::init_world_model_weights(config, 7),
                                 at::Device(at::kCPU));
    const fs::path path = dir / "tiny_world.safetensors";
    model.save(path);
    return path;
}

TEST(ViewerGui, RunsAWorldModelAndReplaysItIdentically) {
    const fs::path dir = fresh_dir("world-model");
    const fs::path model = write_tiny_world_model(dir);
    input::save_trajectory(dir / "walk.json", walk(11, 12));
    input::save_trajectory(dir / "other.json", walk(12, 12));
    constexpr int kFrames = 16;  // 8 blocks of one latent (2 frames each)
    const auto replay = [&](const std::string& file, const std::string& name) {
        const auto r =
            run({QVG_WORLD, "--model", model.string(), "--replay", (dir / file).string(),
                 "--frames", std::to_string(kFrames), "--cache",
                 "qvg,group=16,span=2,sink=1,window=6,centroids=4,asym=1,clip=1,codebook=8",
                 "--hide-overlays", "--record", (dir / (name + ".mp4")).string(),
                 "--headless-screenshot", (dir / (name + ".png")).string()},
                240s);
        EXPECT_EQ(r.exit_code, 0) << r.output;
        EXPECT_NE(r.output.find("world model tiny_world.safetensors"), std::string::npos)
            << r.output;
        return render::decode_mp4_rgb(dir / (name + ".mp4"));
    };
    const auto a = replay("walk.json", "a");
    const auto b = replay("walk.json", "b");
    ASSERT_EQ(a.size(), static_cast<std::size_t>(kFrames));
    ASSERT_EQ(b.size(), a.size());
    EXPECT_EQ(a[0].width, 16);
    EXPECT_EQ(a[0].height, 16);
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].rgb, b[i].rgb) << "frame " << i << " differs between the two replays";
    }
    // The model made pictures, not one flat colour, and they change from block to block.
    bool any_change = false;
    for (std::size_t i = 1; i < a.size(); ++i) any_change = any_change || a[i].rgb != a[0].rgb;
    EXPECT_TRUE(any_change) << "every generated frame is the same";
    const QImage pa = load_rgb(dir / "a.png");
    const QImage pb = load_rgb(dir / "b.png");
    ASSERT_EQ(pa.width(), 1280);
    EXPECT_EQ(diff_fraction(pa, pb, 0, 0, pa.width(), pa.height(), 0), 0.0);
    EXPECT_GT(spread(pa, 100, 200, 600, 500), 3.0) << "no model frame drawn";
    EXPECT_GT(spread(pa, 700, 200, 1200, 500), 10.0) << "no ground truth drawn";
    // Another seed and walk: other noise and another ground truth.
    const auto c = replay("other.json", "c");
    ASSERT_EQ(c.size(), a.size());
    EXPECT_NE(c.back().rgb, a.back().rgb);
}

TEST(ViewerGui, EachModelStartsWithItsOwnCacheUnlessOneWasChosen) {
    const fs::path dir = fresh_dir("default-cache");
    const fs::path tiny = write_tiny_world_model(dir);
    // The tiny world's heads are 16 wide and its latent frames 4 tokens: the world default
    // shrinks to groups of 16 and 4 centroids (the Wan default's groups of 32 would not fit).
    const std::string world_default = "group=16,stages=1,centroids=4,asym=1,clip=1,codebook=4,";
    const auto r = run({QVG_WORLD, "--model", tiny.string(), "--frames", "8",
                        "--headless-screenshot", (dir / "h.png").string()},
                       120s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("cache qvg,bits=2," + world_default), std::string::npos) << r.output;

    // In the window the loaded world model gets the same default, saved as not chosen; a --cache
    // is saved as chosen and restored on the next start.
    const fs::path conf = dir / "config" / "qvg" / "qvg-world.conf";
    const fs::path walked = dir / "walk.json";
    const auto settings_once = [&](std::vector<std::string> args, const std::string& wanted) {
        // Paused, the worker takes the loaded model at once instead of after a block.
        args.insert(args.end(),
                    {"--model", tiny.string(), "--save-trajectory", walked.string(), "--paused"});
        Viewer v(dir, args);
        EXPECT_FALSE(v.window().empty()) << v.log();
        const auto deadline = std::chrono::steady_clock::now() + 90s;
        while (std::chrono::steady_clock::now() < deadline &&
               shell("cat '" + conf.string() + "' 2>/dev/null").find(wanted) == std::string::npos) {
            std::this_thread::sleep_for(200ms);
        }
        std::this_thread::sleep_for(5s);  // the tiny model loads in well under a second
        v.key("ctrl+q");
        const auto code = v.process().wait(30s);
        EXPECT_TRUE(code.has_value() && *code == 0) << v.log();
        // The trajectory saved on exit is the world model's (2 frames per latent), so the
        // settings below are those it ran with.
        EXPECT_EQ(input::load_trajectory(walked).frames_per_latent, 2) << v.log();
        const std::string saved = shell("cat '" + conf.string() + "' 2>/dev/null");
        EXPECT_NE(saved.find(wanted), std::string::npos) << saved << "\nlog:\n" << v.log();
        return saved;
    };
    const std::string first = settings_once({}, world_default);
    EXPECT_NE(first.find("cache_chosen=false"), std::string::npos) << first;
    const std::string chosen = settings_once({"--cache", "qvg,group=16,centroids=3"},
                                             "group=16,stages=1,centroids=3,span=");
    EXPECT_NE(chosen.find("cache_chosen=true"), std::string::npos) << chosen;
    const std::string kept = settings_once({}, "centroids=3,span=");
    EXPECT_NE(kept.find("cache_chosen=true"), std::string::npos) << kept;
}

TEST(ViewerGui, FileThatIsNeitherWorldModelNorCheckpointIsAnError) {
    const fs::path dir = fresh_dir("not-a-model");
    const fs::path plain = dir / "plain.safetensors";
    core::save_safetensors(plain, {{"w", at::zeros({2, 2})}});
    const auto r = run(
        {QVG_WORLD, "--model", plain.string(), "--headless-screenshot", (dir / "x.png").string()},
        60s);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("is not a world model"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir / "x.png"));

    // A file with the world-model key whose tensors are garbage: a message, no crash.
    const fs::path broken = dir / "broken.safetensors";
    core::save_safetensors(
        broken, {{"w", at::zeros({2, 2})}},
        {{core::kWorldModelMetadataKey, core::WorldModelConfig::tiny().to_json()}});
    const auto r2 = run(
        {QVG_WORLD, "--model", broken.string(), "--headless-screenshot", (dir / "y.png").string()},
        60s);
    EXPECT_EQ(r2.exit_code, 1) << r2.output;
    EXPECT_NE(r2.output.find("broken.safetensors"), std::string::npos) << r2.output;

    // A cache whose groups do not divide the tiny model's 16-wide heads: said at once.
    const fs::path tiny = write_tiny_world_model(dir);
    const auto r3 = run({QVG_WORLD, "--model", tiny.string(), "--cache", "qvg,group=32",
                         "--headless-screenshot", (dir / "z.png").string()},
                        60s);
    EXPECT_EQ(r3.exit_code, 1) << r3.output;
    EXPECT_NE(r3.output.find("does not divide the head size 16"), std::string::npos) << r3.output;

    // In the window: an error dialog, and the built-in model keeps running.
    Viewer v(dir, {"--model", broken.string()});
    ASSERT_FALSE(v.window().empty()) << v.log();
    const std::string dialog = find_window("cannot open the model", 90s);
    EXPECT_FALSE(dialog.empty()) << "no error dialog; log:\n" << v.log();
    shell("xdotool windowfocus --sync " + dialog + " 2>/dev/null; xdotool key Return");
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(v.process().running()) << v.log();
    EXPECT_FALSE(v.wait_for_frames().isNull());
}

}  // namespace
}  // namespace qvg::test
