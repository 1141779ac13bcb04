#include <qvg/world/renderer.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace qvg::world {
namespace {

constexpr double kDegToRad = std::numbers::pi / 180.0;

struct Rgbf {
    float r, g, b;
};

Rgbf mix(Rgbf a, Rgbf b, float t) {
    return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

Rgbf unpack(std::uint32_t c) {
    return {float((c >> 16) & 0xff), float((c >> 8) & 0xff), float(c & 0xff)};
}

constexpr Rgbf kHorizon{200.0f, 216.0f, 232.0f};
constexpr Rgbf kZenith{62.0f, 112.0f, 196.0f};
constexpr Rgbf kSunGlow{255.0f, 236.0f, 190.0f};
constexpr float kSunAzimuthDeg = 225.0f;  // the direction World lights its terrain from
constexpr float kSunElevationDeg = 40.0f;

double snap(double v, double quantum) { return std::round(v / quantum) * quantum; }

}  // namespace

void check_render_settings(const RenderSettings& s) {
    if (s.width <= 0 || s.height <= 0 || s.width > 8192 || s.height > 8192) {
        throw std::invalid_argument("render: expected an image size in 1..8192, got " +
                                    std::to_string(s.width) + "x" + std::to_string(s.height));
    }
    if (!(s.fov_deg > 0.0 && s.fov_deg < 170.0)) {
        throw std::invalid_argument("render: expected a field of view in (0, 170) degrees, got " +
                                    std::to_string(s.fov_deg));
    }
    if (!(s.near_m > 0.0 && s.far_m > s.near_m && s.fog_start_m >= 0.0 &&
          s.fog_start_m < s.far_m)) {
        throw std::invalid_argument(
            "render: expected 0 < near_m < far_m and 0 <= fog_start_m < far_m");
    }
}

void render(const World& world, const input::CameraState& pose, const RenderSettings& settings,
            std::span<std::uint8_t> out) {
    check_render_settings(settings);
    const int w = settings.width;
    const int h = settings.height;
    if (out.size() != static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3) {
        throw std::invalid_argument("render: output holds " + std::to_string(out.size()) +
                                    " bytes, expected width * height * 3 = " +
                                    std::to_string(std::size_t(w) * std::size_t(h) * 3));
    }
    const input::Intrinsics k = input::intrinsics_for(w, h, settings.fov_deg);

    const double yaw = snap(pose.yaw_deg, 1e-7) * kDegToRad;
    const double pitch = snap(pose.pitch_deg, 1e-7) * kDegToRad;
    const float cam_x = static_cast<float>(snap(world.map_x_m(pose), 1e-6));
    const float cam_z = static_cast<float>(snap(world.map_z_m(pose), 1e-6));
    const float alt = static_cast<float>(snap(world.altitude_m(pose), 1e-6));
    // Map directions of the camera's forward and right axes (see World's axes).
    const float fwd_x = static_cast<float>(std::sin(yaw));
    const float fwd_z = static_cast<float>(std::cos(yaw));
    const float right_x = fwd_z;
    const float right_z = -fwd_x;
    const float fx = static_cast<float>(k.fx);
    const float fy = static_cast<float>(k.fy);
    // Looking up moves the horizon down the image.
    const float horizon = static_cast<float>(k.cy + k.fy * std::tan(pitch));

    const int mask = world.map_size() - 1;
    const float near_m = static_cast<float>(settings.near_m);
    const float far_m = static_cast<float>(settings.far_m);
    const float fog_start = static_cast<float>(settings.fog_start_m);
    const float fog_scale = 1.0f / (far_m - fog_start);

    auto put = [&](int x, int y, Rgbf c) {
        std::uint8_t* p = out.data() + (static_cast<std::size_t>(y) * w + x) * 3;
        p[0] = static_cast<std::uint8_t>(std::clamp(c.r, 0.0f, 255.0f) + 0.5f);
        p[1] = static_cast<std::uint8_t>(std::clamp(c.g, 0.0f, 255.0f) + 0.5f);
        p[2] = static_cast<std::uint8_t>(std::clamp(c.b, 0.0f, 255.0f) + 0.5f);
    };

    for (int x = 0; x < w; ++x) {
        const float u = (static_cast<float>(x) + 0.5f - static_cast<float>(k.cx)) / fx;
        // Not normalised: t is the depth along the camera's forward axis, as the projection needs.
        const float dir_x = fwd_x + right_x * u;
        const float dir_z = fwd_z + right_z * u;
        int ybuf = h;  // rows [ybuf, h) are drawn
        float t = near_m;
        while (t < far_m && ybuf > 0) {
            const float px = cam_x + dir_x * t;
            const float pz = cam_z + dir_z * t;
            const float flx = std::floor(px);
            const float flz = std::floor(pz);
            const int ix = static_cast<int>(flx);
            const int iz = static_cast<int>(flz);
            const float tx = px - flx;
            const float tz = pz - flz;
            const Cell& c00 = world.cell(ix & mask, iz & mask);
            const Cell& c10 = world.cell((ix + 1) & mask, iz & mask);
            const Cell& c01 = world.cell(ix & mask, (iz + 1) & mask);
            const Cell& c11 = world.cell((ix + 1) & mask, (iz + 1) & mask);
            const float top = c00.height_m + (c10.height_m - c00.height_m) * tx;
            const float bottom = c01.height_m + (c11.height_m - c01.height_m) * tx;
            const float height = top + (bottom - top) * tz;
            const float y = horizon + (alt - height) * fy / t;
            const int iy = std::max(0, static_cast<int>(std::ceil(y)));
            if (iy < ybuf) {
                // Nearest cell's colour: keeps landmark edges crisp.
                const Cell& near_cell =
                    tx < 0.5f ? (tz < 0.5f ? c00 : c01) : (tz < 0.5f ? c10 : c11);
                Rgbf colour = unpack(near_cell.colour);
                if (near_cell.colour & kWaterFlag) {
                    // Water mirrors more of the sky at grazing angles (far away).
                    colour = mix(colour, kHorizon, std::min(0.75f, t / 250.0f));
                }
                const float fog = std::clamp((t - fog_start) * fog_scale, 0.0f, 1.0f);
                colour = mix(colour, kHorizon, fog * (2.0f - fog));
                for (int yy = iy; yy < ybuf; ++yy) put(x, yy, colour);
                ybuf = iy;
            }
            t += std::max(0.1f, t * 0.008f);
        }
        if (ybuf <= 0) continue;
        // Sky: a gradient by elevation and a glow around the sun's fixed direction.
        const float ray_az = static_cast<float>(yaw) + std::atan(u);
        float d_az = ray_az / static_cast<float>(kDegToRad) - kSunAzimuthDeg;
        d_az -= 360.0f * std::round(d_az / 360.0f);
        for (int yy = 0; yy < ybuf; ++yy) {
            const float el = std::atan((horizon - static_cast<float>(yy) - 0.5f) / fy) /
                             static_cast<float>(kDegToRad);
            const float s = std::clamp(el / 60.0f, 0.0f, 1.0f);
            Rgbf c = mix(kHorizon, kZenith, std::sqrt(s));
            const float da = d_az * std::cos(el * static_cast<float>(kDegToRad));
            const float de = el - kSunElevationDeg;
            const float glow = std::exp(-(da * da + de * de) / (2.0f * 8.0f * 8.0f));
            c = mix(c, kSunGlow, 0.8f * glow);
            put(x, yy, c);
        }
    }
}

Image render(const World& world, const input::CameraState& pose, const RenderSettings& settings) {
    check_render_settings(settings);
    Image image{
        settings.width, settings.height,
        std::vector<std::uint8_t>(std::size_t(settings.width) * std::size_t(settings.height) * 3)};
    render(world, pose, settings, image.rgb);
    return image;
}

}  // namespace qvg::world
