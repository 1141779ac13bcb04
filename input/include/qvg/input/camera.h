#pragma once
// Camera poses in HY-WorldPlay's conventions. The camera frame is OpenCV's: x right, y down,
// z forward. A pose is a camera-to-world matrix c2w (4x4, row-major, [R | t; 0 0 0 1]); the model
// is fed w2c = inv(c2w). The world frame is the frame of a level camera at the origin, so world y
// points down and the ground plane is x-z (up is -y).
//
// CameraState is the state a player steers: a position, a yaw about the world's vertical axis and
// a pitch about the camera's x axis, composed as upstream's generate_camera_trajectory_local does
// (c2w rotation = Ry(yaw) Rx(pitch)): positive yaw turns the view toward +x (right), positive
// pitch toward -y (up). There is no roll.

#include <array>

namespace qvg::input {

struct Vec3 {
    double x = 0.0;
    double y = 0.0;
    double z = 0.0;
};

// Row-major 4x4: element (r, c) is m[4 * r + c].
using Mat4 = std::array<double, 16>;

struct CameraState {
    Vec3 position;  // world units (HY-WorldPlay's trajectories move 0.08 per latent frame)
    double yaw_deg = 0.0;
    double pitch_deg = 0.0;
};

Mat4 identity4();
Mat4 multiply(const Mat4& a, const Mat4& b);
// Inverse of a rigid transform [R | t] (R orthonormal): [R^T | -R^T t].
Mat4 invert_rigid(const Mat4& m);
// Largest |R^T R - I| entry and |last row - (0 0 0 1)| entry: 0 for an exact rigid transform.
double rigid_error(const Mat4& m);

Mat4 rotation_x(double angle_deg);
Mat4 rotation_y(double angle_deg);
Mat4 rotation_z(double angle_deg);

Mat4 camera_to_world(const CameraState& state);
Mat4 world_to_camera(const CameraState& state);
// The camera's axes in world coordinates (columns of c2w).
Vec3 camera_right(const CameraState& state);
Vec3 camera_down(const CameraState& state);
Vec3 camera_forward(const CameraState& state);
// Yaw in [-180, 180) after adding turns; pitch unchanged.
double wrap_degrees(double angle_deg);

// Pinhole intrinsics in pixels for a width x height image whose horizontal field of view is
// hfov_deg; square pixels, principal point at the image centre (as upstream's pose strings:
// f = 969.697, c = (960, 540) for 1920x1080).
struct Intrinsics {
    double fx = 0.0;
    double fy = 0.0;
    double cx = 0.0;
    double cy = 0.0;
};

// Throws std::invalid_argument for a non-positive size or a field of view outside (0, 180).
Intrinsics intrinsics_for(int width, int height, double hfov_deg);
// Upstream's Ks_norm: [[fx/W, 0, 0.5], [0, fy/H, 0.5], [0, 0, 1]] as fx/W, fy/H, 0.5, 0.5.
Intrinsics normalized(const Intrinsics& k, int width, int height);

}  // namespace qvg::input
