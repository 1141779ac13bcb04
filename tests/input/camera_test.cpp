#include <qvg/input/camera.h>

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>

namespace qvg::input {
namespace {

void expect_mat_near(const Mat4& a, const Mat4& b, double tol) {
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(a[i], b[i], tol) << "entry " << i;
}

TEST(Camera, LevelCameraAtOriginIsIdentity) {
    expect_mat_near(camera_to_world(CameraState{}), identity4(), 0.0);
}

TEST(Camera, YawRightLooksTowardPlusXAndPitchUpTowardMinusY) {
    const Vec3 f = camera_forward(CameraState{{}, 90.0, 0.0});
    EXPECT_DOUBLE_EQ(f.x, 1.0);
    EXPECT_DOUBLE_EQ(f.z, 0.0);
    const Vec3 u = camera_forward(CameraState{{}, 0.0, 30.0});
    EXPECT_NEAR(u.y, -0.5, 1e-15);
    EXPECT_NEAR(u.z, std::sqrt(3.0) / 2.0, 1e-15);
    // No roll: the camera's x axis stays in the ground plane.
    EXPECT_NEAR(camera_right(CameraState{{}, 47.0, -21.0}).y, 0.0, 1e-15);
}

TEST(Camera, WorldToCameraInvertsCameraToWorld) {
    const CameraState s{{1.0, -2.0, 3.5}, 33.0, -12.0};
    expect_mat_near(multiply(world_to_camera(s), camera_to_world(s)), identity4(), 1e-12);
    EXPECT_LT(rigid_error(camera_to_world(s)), 1e-12);
    // The camera centre maps to the camera-frame origin.
    const Mat4 w2c = world_to_camera(s);
    EXPECT_NEAR(w2c[3] + w2c[0] * 1.0 + w2c[1] * -2.0 + w2c[2] * 3.5, 0.0, 1e-12);
}

TEST(Camera, WrapDegrees) {
    EXPECT_DOUBLE_EQ(wrap_degrees(190.0), -170.0);
    EXPECT_DOUBLE_EQ(wrap_degrees(-190.0), 170.0);
    EXPECT_DOUBLE_EQ(wrap_degrees(360.0), 0.0);
    EXPECT_DOUBLE_EQ(wrap_degrees(180.0), -180.0);
}

TEST(Camera, IntrinsicsMatchUpstreamPoseStringCamera) {
    // Upstream: f = 969.697, c = (960, 540) for 1920x1080.
    const double hfov = 2.0 * std::atan(960.0 / 969.697) * 180.0 / std::numbers::pi;
    const Intrinsics k = intrinsics_for(1920, 1080, hfov);
    EXPECT_NEAR(k.fx, 969.697, 1e-9);
    EXPECT_NEAR(k.fy, 969.697, 1e-9);
    EXPECT_DOUBLE_EQ(k.cx, 960.0);
    EXPECT_DOUBLE_EQ(k.cy, 540.0);
    const Intrinsics n = normalized(k, 1920, 1080);
    EXPECT_NEAR(n.fx, 969.697 / 1920.0, 1e-12);
    EXPECT_NEAR(n.fy, 969.697 / 1080.0, 1e-12);
    EXPECT_DOUBLE_EQ(n.cx, 0.5);
    const Intrinsics k90 = intrinsics_for(64, 64, 90.0);
    EXPECT_NEAR(k90.fx, 32.0, 1e-12);
    EXPECT_THROW(intrinsics_for(0, 64, 90.0), std::invalid_argument);
    EXPECT_THROW(intrinsics_for(64, 64, 180.0), std::invalid_argument);
}

}  // namespace
}  // namespace qvg::input
