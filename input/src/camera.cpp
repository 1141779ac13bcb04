#include <qvg/input/camera.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace qvg::input {
namespace {

struct SinCos {
    double s;
    double c;
};

// Exact at multiples of 90 degrees, so that walks made of quarter turns close exactly.
SinCos sincos_deg(double angle_deg) {
    double a = std::fmod(angle_deg, 360.0);
    if (a < 0.0) a += 360.0;
    if (a == 0.0) return {0.0, 1.0};
    if (a == 90.0) return {1.0, 0.0};
    if (a == 180.0) return {0.0, -1.0};
    if (a == 270.0) return {-1.0, 0.0};
    const double r = a * std::numbers::pi / 180.0;
    return {std::sin(r), std::cos(r)};
}

}  // namespace

Mat4 identity4() { return {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}; }

Mat4 multiply(const Mat4& a, const Mat4& b) {
    Mat4 out{};
    for (int r = 0; r < 4; ++r) {
        for (int c = 0; c < 4; ++c) {
            double sum = 0.0;
            for (int k = 0; k < 4; ++k) sum += a[4 * r + k] * b[4 * k + c];
            out[4 * r + c] = sum;
        }
    }
    return out;
}

Mat4 invert_rigid(const Mat4& m) {
    Mat4 out = identity4();
    for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) out[4 * r + c] = m[4 * c + r];
    }
    for (int r = 0; r < 3; ++r) {
        out[4 * r + 3] = -(out[4 * r] * m[3] + out[4 * r + 1] * m[7] + out[4 * r + 2] * m[11]);
    }
    return out;
}

double rigid_error(const Mat4& m) {
    double err = 0.0;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
            double dot = 0.0;
            for (int k = 0; k < 3; ++k) dot += m[4 * k + i] * m[4 * k + j];
            err = std::max(err, std::abs(dot - (i == j ? 1.0 : 0.0)));
        }
    }
    err = std::max({err, std::abs(m[12]), std::abs(m[13]), std::abs(m[14]), std::abs(m[15] - 1.0)});
    return err;
}

Mat4 rotation_x(double angle_deg) {
    const auto [s, c] = sincos_deg(angle_deg);
    return {1, 0, 0, 0, 0, c, -s, 0, 0, s, c, 0, 0, 0, 0, 1};
}

Mat4 rotation_y(double angle_deg) {
    const auto [s, c] = sincos_deg(angle_deg);
    return {c, 0, s, 0, 0, 1, 0, 0, -s, 0, c, 0, 0, 0, 0, 1};
}

Mat4 rotation_z(double angle_deg) {
    const auto [s, c] = sincos_deg(angle_deg);
    return {c, -s, 0, 0, s, c, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
}

Mat4 camera_to_world(const CameraState& state) {
    Mat4 m = multiply(rotation_y(state.yaw_deg), rotation_x(state.pitch_deg));
    m[3] = state.position.x;
    m[7] = state.position.y;
    m[11] = state.position.z;
    return m;
}

Mat4 world_to_camera(const CameraState& state) { return invert_rigid(camera_to_world(state)); }

Vec3 camera_right(const CameraState& state) {
    const Mat4 m = camera_to_world(state);
    return {m[0], m[4], m[8]};
}

Vec3 camera_down(const CameraState& state) {
    const Mat4 m = camera_to_world(state);
    return {m[1], m[5], m[9]};
}

Vec3 camera_forward(const CameraState& state) {
    const Mat4 m = camera_to_world(state);
    return {m[2], m[6], m[10]};
}

double wrap_degrees(double angle_deg) {
    double a = std::fmod(angle_deg + 180.0, 360.0);
    if (a < 0.0) a += 360.0;
    return a - 180.0;
}

Intrinsics intrinsics_for(int width, int height, double hfov_deg) {
    if (width <= 0 || height <= 0) {
        throw std::invalid_argument("intrinsics_for: expected a positive image size, got " +
                                    std::to_string(width) + "x" + std::to_string(height));
    }
    if (!(hfov_deg > 0.0 && hfov_deg < 180.0)) {
        throw std::invalid_argument(
            "intrinsics_for: expected a horizontal field of view in (0, 180) degrees, got " +
            std::to_string(hfov_deg));
    }
    const double f = 0.5 * width / std::tan(0.5 * hfov_deg * std::numbers::pi / 180.0);
    return {f, f, 0.5 * width, 0.5 * height};
}

Intrinsics normalized(const Intrinsics& k, int width, int height) {
    return {k.fx / width, k.fy / height, 0.5, 0.5};
}

}  // namespace qvg::input
