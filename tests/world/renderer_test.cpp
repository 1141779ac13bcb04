#include <qvg/world/renderer.h>

#include "test_util.h"
#include "world_test_util.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <stdexcept>

namespace qvg::world {
namespace {

RenderSettings size(int w, int h) {
    RenderSettings s;
    s.width = w;
    s.height = h;
    return s;
}

TEST(Renderer, SameSeedIdenticalFramesDifferentSeedDifferent) {
    const World a(WorldConfig{5, 256, 25.0, 1.8});
    const World b(WorldConfig{5, 256, 25.0, 1.8});
    const World c(WorldConfig{6, 256, 25.0, 1.8});
    for (double yaw : {0.0, 120.0, -75.0}) {
        input::CameraState s = a.spawn();
        s.yaw_deg = yaw;
        const Image ia = render(a, s, size(64, 64));
        const Image ib = render(b, b.on_ground(s), size(64, 64));
        const Image ic = render(c, c.on_ground(s), size(64, 64));
        EXPECT_EQ(ia.rgb, ib.rgb) << "yaw " << yaw;
        EXPECT_GT(mean_abs_diff(ia, ic), 3.0) << "yaw " << yaw;
    }
}

TEST(Renderer, SkyAboveGroundBelow) {
    const World& w = test_world(1);
    const Image im = render(w, w.spawn(), size(64, 64));
    const Stats sky = region_mean(im, 0, 0, 64, 8);
    const Stats ground = region_mean(im, 0, 56, 64, 64);
    EXPECT_GT(sky.b, sky.r + 20);        // blue sky
    EXPECT_GT(ground.g, ground.b + 20);  // green or brown ground, not sky
    // Looking up shows more sky, looking down more ground.
    input::CameraState up = w.spawn();
    up.pitch_deg = 30;
    input::CameraState down = w.spawn();
    down.pitch_deg = -30;
    EXPECT_GT(region_mean(render(w, up, size(64, 64)), 0, 24, 64, 40).b,
              region_mean(render(w, down, size(64, 64)), 0, 24, 64, 40).b + 20);
}

TEST(Renderer, MovingForwardChangesTheImage) {
    const World& w = test_world(1);
    const input::CameraState s0 = w.spawn();
    input::CameraState s1 = s0;
    s1.position.z += 0.08;  // one latent's step: 2 m
    s1 = w.on_ground(s1);
    const Image a = render(w, s0, size(64, 64));
    const Image b = render(w, s1, size(64, 64));
    EXPECT_GT(mean_abs_diff(a, b), 0.5);
    // A yaw of 3 degrees changes it too.
    input::CameraState s2 = s0;
    s2.yaw_deg = 3.0;
    EXPECT_GT(mean_abs_diff(a, render(w, s2, size(64, 64))), 0.5);
}

// Each monolith, looked at from 25 m away over the tree tops, fills the middle of the view with
// its colour.
TEST(Renderer, LandmarksAreVisibleAndDistinct) {
    const World& w = test_world(1);
    const double mpu = w.config().metres_per_unit;
    const input::CameraState spawn = w.spawn();
    const double sx = w.map_x_m(spawn);
    const double sz = w.map_z_m(spawn);
    int checked = 0;
    for (const Landmark& l : w.landmarks()) {
        if (l.kind != LandmarkKind::kMonolith) continue;
        // Stand 25 m south of it (lower z), looking north (+z), 14 m above its ground.
        input::CameraState s;
        s.position.x = (l.x_m - sx) / mpu;
        s.position.z = (l.z_m - 25.0 - sz) / mpu;
        s = w.on_ground(s);
        s.position.y = -(w.ground_height_m(l.x_m, l.z_m) + 14.0) / mpu;
        const Image im = render(w, s, size(64, 64));
        const Stats mid = region_mean(im, 31, 25, 34, 33);
        const double r = double((l.rgb >> 16) & 0xff);
        const double g = double((l.rgb >> 8) & 0xff);
        const double b = double(l.rgb & 0xff);
        const double dist = std::abs(mid.r - r) + std::abs(mid.g - g) + std::abs(mid.b - b);
        EXPECT_LT(dist, 150.0) << l.name << ": mean (" << mid.r << ", " << mid.g << ", " << mid.b
                               << ")";
        ++checked;
    }
    EXPECT_EQ(checked, 6);
}

TEST(Renderer, DifferentPlacesLookDifferent) {
    const World& w = test_world(1);
    const Image a = render(w, w.spawn(), size(64, 64));
    input::CameraState far = w.spawn();
    far.position.x = 6.0;
    far.position.z = -5.0;
    far = w.on_ground(far);
    const Image b = render(w, far, size(64, 64));
    EXPECT_GT(mean_abs_diff(a, b), 8.0);
}

TEST(Renderer, RejectsBadSettings) {
    const World& w = test_world(1);
    EXPECT_THROW(render(w, w.spawn(), size(0, 64)), std::invalid_argument);
    RenderSettings s = size(64, 64);
    s.fov_deg = 0;
    EXPECT_THROW(render(w, w.spawn(), s), std::invalid_argument);
    std::vector<std::uint8_t> small(10);
    EXPECT_THROW(render(w, w.spawn(), size(64, 64), small), std::invalid_argument);
}

// Generous bound so that a loaded CI machine never fails it; prints the rate.
TEST(Renderer, FastEnough) {
    const World& w = test_world(1);
    for (int side : {64, 128}) {
        Image im = render(w, w.spawn(), size(side, side));
        input::CameraState s = w.spawn();
        constexpr int kFrames = 200;
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < kFrames; ++i) {
            s.yaw_deg = 1.8 * i;
            s.position.z = 0.01 * i;
            s = w.on_ground(s);
            render(w, s, size(side, side), im.rgb);
        }
        const double ms =
            1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
            kFrames;
        std::printf("render %dx%d: %.3f ms per frame, %.0f frames per second (one thread)\n", side,
                    side, ms, 1e3 / ms);
        EXPECT_LT(ms, 20.0);
    }
}

// Writes a few views as PPM files next to the test binary (for looking at them) and checks that
// each has a sky, a horizon and coloured ground.
TEST(Renderer, Screenshots) {
    const World& w = test_world(1);
    const std::filesystem::path dir = std::filesystem::path(QVG_BINARY_DIR) / "world-screenshots";
    std::filesystem::create_directories(dir);
    for (int i = 0; i < 4; ++i) {
        input::CameraState s = w.spawn();
        s.yaw_deg = 90.0 * i;
        const Image im = render(w, s, size(128, 128));
        write_ppm(dir / ("view-" + std::to_string(i) + ".ppm"), im);
        const Stats top = region_mean(im, 0, 0, 128, 16);
        const Stats bottom = region_mean(im, 0, 112, 128, 128);
        EXPECT_GT(top.b, top.r) << "view " << i;
        EXPECT_GT(bottom.r + bottom.g, 2.0 * bottom.b) << "view " << i;
        EXPECT_EQ(read_file(dir / ("view-" + std::to_string(i) + ".ppm")).size(),
                  std::string("P6\n128 128\n255\n").size() + im.rgb.size());
    }
}

}  // namespace
}  // namespace qvg::world
