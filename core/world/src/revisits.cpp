#include <qvg/world/revisits.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace qvg::world {
namespace {

// a - b on a circle of circumference `period`, in [-period / 2, period / 2).
double wrapped(double a, double b, double period) {
    const double d = std::fmod(a - b + period / 2.0, period);
    return (d < 0 ? d + period : d) - period / 2.0;
}

double angle_between_deg(const input::Vec3& a, const input::Vec3& b) {
    const double dot = a.x * b.x + a.y * b.y + a.z * b.z;
    const double na = std::sqrt(a.x * a.x + a.y * a.y + a.z * a.z);
    const double nb = std::sqrt(b.x * b.x + b.y * b.y + b.z * b.z);
    return std::acos(std::clamp(dot / (na * nb), -1.0, 1.0)) * 180.0 / std::numbers::pi;
}

}  // namespace

std::vector<Revisit> find_revisits(const World& world, std::span<const input::CameraState> poses,
                                   const RevisitOptions& options, int from_frame) {
    if (!(options.max_distance_m >= 0.0) || !(options.max_angle_deg >= 0.0) ||
        options.min_gap_frames < 0) {
        throw std::invalid_argument("find_revisits: distance, angle and gap must not be negative");
    }
    const int n = static_cast<int>(poses.size());
    if (from_frame < 0 || from_frame > n) {
        throw std::invalid_argument("find_revisits: first frame " + std::to_string(from_frame) +
                                    " is outside 0.." + std::to_string(n));
    }
    const double period = static_cast<double>(world.map_size());
    std::vector<double> x(static_cast<std::size_t>(n)), z(static_cast<std::size_t>(n));
    std::vector<input::Vec3> forward(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const auto s = static_cast<std::size_t>(i);
        x[s] = world.map_x_m(poses[s]);
        z[s] = world.map_z_m(poses[s]);
        forward[s] = input::camera_forward(poses[s]);
    }
    std::vector<Revisit> out;
    for (int j = from_frame; j < n; ++j) {
        const auto sj = static_cast<std::size_t>(j);
        Revisit r;
        r.frame = j;
        bool found = false;
        for (int i = 0; i <= j - options.min_gap_frames; ++i) {
            const auto si = static_cast<std::size_t>(i);
            const double distance =
                std::hypot(wrapped(x[sj], x[si], period), wrapped(z[sj], z[si], period));
            if (distance > options.max_distance_m) continue;
            const double angle = angle_between_deg(forward[sj], forward[si]);
            if (angle > options.max_angle_deg) continue;
            if (!found) r.first_seen = i;
            found = true;
            r.last_seen = i;
            r.distance_m = distance;
            r.angle_deg = angle;
        }
        if (found) out.push_back(r);
    }
    return out;
}

}  // namespace qvg::world
