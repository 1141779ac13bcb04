#include <qvg/world/world.h>

#include "noise.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace qvg::world {
namespace {

using detail::Rng;

constexpr double kPi = std::numbers::pi;

double smoothstep(double e0, double e1, double x) {
    const double t = std::clamp((x - e0) / (e1 - e0), 0.0, 1.0);
    return t * t * (3.0 - 2.0 * t);
}

double lerp(double a, double b, double t) { return a + (b - a) * t; }

struct Rgb {
    double r, g, b;
};

Rgb mix(Rgb a, Rgb b, double t) {
    return {lerp(a.r, b.r, t), lerp(a.g, b.g, t), lerp(a.b, b.b, t)};
}
Rgb scale(Rgb c, double s) { return {c.r * s, c.g * s, c.b * s}; }

std::uint32_t pack(Rgb c) {
    auto q = [](double v) {
        return static_cast<std::uint32_t>(std::clamp(v, 0.0, 255.0) + 0.5) & 0xffu;
    };
    return (q(c.r) << 16) | (q(c.g) << 8) | q(c.b);
}

Rgb unpack(std::uint32_t c) {
    return {double((c >> 16) & 0xff), double((c >> 8) & 0xff), double(c & 0xff)};
}

// Shortest offset on a torus of the given size.
double wrapped_delta(double d, double size) { return d - size * std::round(d / size); }

// Distinct, saturated colours for the monoliths, so that each is recognisable on its own.
constexpr std::array<std::pair<const char*, std::uint32_t>, 6> kMonolithColours = {{
    {"red monolith", 0xd02020},
    {"blue monolith", 0x2040e0},
    {"yellow monolith", 0xf0d020},
    {"magenta monolith", 0xd020c0},
    {"cyan monolith", 0x20d0d0},
    {"white monolith", 0xf4f4f4},
}};
constexpr std::array<std::pair<const char*, std::uint32_t>, 3> kGroveColours = {{
    {"orange grove", 0xe07818},
    {"crimson grove", 0xb01830},
    {"golden grove", 0xe0c030},
}};

constexpr double kTowerRadius = 4.5;
constexpr double kTowerHeight = 32.0;
constexpr double kMonolithHalfLength = 3.5;
constexpr double kMonolithHalfWidth = 1.5;
constexpr double kMonolithHeight = 20.0;
constexpr double kPathHalfWidth = 1.3;
constexpr double kSpawnClearing = 15.0;
// No forest this close to the spawn, so that the first view reaches the landmarks.
constexpr double kMeadowRadius = 80.0;

// Sun direction (up = +y here): from the south-west, 40 degrees high.
struct Dir3 {
    double x, y, z;
};
Dir3 sun_direction() {
    const double el = 40.0 * kPi / 180.0;
    const double az = 225.0 * kPi / 180.0;
    return {std::cos(el) * std::sin(az), std::sin(el), std::cos(el) * std::cos(az)};
}

struct Segment {
    double ax, az, bx, bz;
};

double distance_to_segment(double px, double pz, const Segment& s) {
    const double dx = s.bx - s.ax;
    const double dz = s.bz - s.az;
    const double len2 = dx * dx + dz * dz;
    const double t =
        len2 > 0.0 ? std::clamp(((px - s.ax) * dx + (pz - s.az) * dz) / len2, 0.0, 1.0) : 0.0;
    const double ex = px - (s.ax + t * dx);
    const double ez = pz - (s.az + t * dz);
    return std::sqrt(ex * ex + ez * ez);
}

}  // namespace

World::World(const WorldConfig& config) : config_(config), size_(config.map_size) {
    if (size_ < 256 || size_ > 8192 || (size_ & (size_ - 1)) != 0) {
        throw std::invalid_argument("World: map_size must be a power of two in 256..8192, got " +
                                    std::to_string(size_));
    }
    if (!(config.metres_per_unit > 0.0) || !std::isfinite(config.metres_per_unit)) {
        throw std::invalid_argument("World: metres_per_unit must be positive, got " +
                                    std::to_string(config.metres_per_unit));
    }
    if (!(config.eye_height_m > 0.0) || !std::isfinite(config.eye_height_m)) {
        throw std::invalid_argument("World: eye_height_m must be positive, got " +
                                    std::to_string(config.eye_height_m));
    }
    generate();
}

void World::generate() {
    const int n = size_;
    const double nd = n;
    const std::uint64_t seed = config_.seed;
    const auto sub = [&](std::uint64_t k) {
        return detail::mix64(seed * 0x9e3779b97f4a7c15ull + k);
    };
    Rng rng(sub(1));

    spawn_x_m_ = 0.5 * nd;
    spawn_z_m_ = 0.5 * nd;
    const double reach = std::min(320.0, 0.4 * nd);  // landmarks lie within this of the spawn

    // ---- landmarks -----------------------------------------------------------------------------
    // The lake lies ahead of the spawn (+z), so the first view has water, shore and far hills.
    const double lake_r = rng.uniform(38.0, 52.0);
    const double lake_x = spawn_x_m_ + rng.uniform(-25.0, 25.0);
    const double lake_z = spawn_z_m_ + std::min(reach * 0.5, rng.uniform(120.0, 150.0));
    landmarks_.push_back({LandmarkKind::kLake, "lake", lake_x, lake_z, lake_r, 0x2850a0});

    // Other landmarks on spread-out bearings, kept clear of the lake, the spawn and each other.
    auto place = [&](double bearing_deg, double min_d, double max_d, double clearance) {
        for (int attempt = 0;; ++attempt) {
            const double b = (bearing_deg + rng.uniform(-20.0, 20.0)) * kPi / 180.0;
            const double d = rng.uniform(min_d, max_d);
            const double x = spawn_x_m_ + d * std::sin(b);
            const double z = spawn_z_m_ + d * std::cos(b);
            bool ok = std::hypot(x - lake_x, z - lake_z) > lake_r + clearance + 10.0;
            for (const Landmark& l : landmarks_) {
                ok = ok && std::hypot(x - l.x_m, z - l.z_m) > l.radius_m + clearance + 12.0;
            }
            if (ok || attempt > 50) return std::pair{x, z};
        }
    };
    const double tower_offset = rng.uniform(0.0, 90.0);
    for (int i = 0; i < 4; ++i) {
        const auto [x, z] = place(tower_offset + 90.0 * i, 0.35 * reach, reach, kTowerRadius);
        landmarks_.push_back(
            {LandmarkKind::kTower, "tower " + std::to_string(i + 1), x, z, kTowerRadius, 0xb42820});
    }
    const double mono_offset = rng.uniform(0.0, 60.0);
    for (std::size_t i = 0; i < kMonolithColours.size(); ++i) {
        const auto [x, z] = place(mono_offset + 60.0 * static_cast<double>(i), 45.0, 0.9 * reach,
                                  kMonolithHalfLength);
        landmarks_.push_back({LandmarkKind::kMonolith, kMonolithColours[i].first, x, z,
                              kMonolithHalfLength, kMonolithColours[i].second});
    }
    const double grove_offset = rng.uniform(0.0, 120.0);
    for (std::size_t i = 0; i < kGroveColours.size(); ++i) {
        const auto [x, z] =
            place(grove_offset + 120.0 * static_cast<double>(i), 60.0, 0.8 * reach, 16.0);
        landmarks_.push_back(
            {LandmarkKind::kGrove, kGroveColours[i].first, x, z, 16.0, kGroveColours[i].second});
    }

    // Paths from the spawn to each tower and to the lake shore, bent by a random midpoint.
    std::vector<Segment> paths;
    for (const Landmark& l : landmarks_) {
        if (l.kind != LandmarkKind::kTower && l.kind != LandmarkKind::kLake) continue;
        double ex = l.x_m;
        double ez = l.z_m;
        if (l.kind == LandmarkKind::kLake) {  // stop at the shore
            const double d = std::hypot(ex - spawn_x_m_, ez - spawn_z_m_);
            const double keep = std::max(0.0, (d - l.radius_m * 1.1) / d);
            ex = spawn_x_m_ + (ex - spawn_x_m_) * keep;
            ez = spawn_z_m_ + (ez - spawn_z_m_) * keep;
        }
        const double bend = rng.uniform(-0.25, 0.25);
        const double mx = 0.5 * (spawn_x_m_ + ex) + bend * (ez - spawn_z_m_);
        const double mz = 0.5 * (spawn_z_m_ + ez) - bend * (ex - spawn_x_m_);
        constexpr int kPieces = 12;
        // Paths begin at the edge of the spawn clearing: a junction under the camera would fill
        // the first view with path.
        double px = spawn_x_m_;
        double pz = spawn_z_m_;
        for (int k = 1; k <= kPieces; ++k) {  // a quadratic Bezier in straight pieces
            const double t = static_cast<double>(k) / kPieces;
            const double qx = (1 - t) * (1 - t) * spawn_x_m_ + 2 * (1 - t) * t * mx + t * t * ex;
            const double qz = (1 - t) * (1 - t) * spawn_z_m_ + 2 * (1 - t) * t * mz + t * t * ez;
            if (std::hypot(qx - spawn_x_m_, qz - spawn_z_m_) > kSpawnClearing) {
                paths.push_back({px, pz, qx, qz});
            }
            px = qx;
            pz = qz;
        }
    }

    // ---- terrain heights -----------------------------------------------------------------------
    const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
    std::vector<double> h(count);
    const std::uint64_t s_hills = sub(2);
    const std::uint64_t s_mask = sub(3);
    const std::uint64_t s_ridge = sub(4);
    auto raw_height = [&](double x, double z) {
        double v = 26.0 * detail::fbm_gradient(x, z, n, 256, 6, 0.5, s_hills) + 7.0;
        const double d_spawn =
            std::hypot(wrapped_delta(x - spawn_x_m_, nd), wrapped_delta(z - spawn_z_m_, nd));
        const double mask = smoothstep(0.0, 0.4, detail::fbm_value(x, z, n, 512, 2, 0.5, s_mask)) *
                            smoothstep(160.0, 320.0, d_spawn);
        if (mask > 0.0)
            v += 120.0 * mask * std::pow(detail::fbm_ridged(x, z, n, 256, 5, s_ridge), 1.6);
        return v;
    };
    for (int z = 0; z < n; ++z) {
        for (int x = 0; x < n; ++x) h[index(x, z)] = raw_height(x, z);
    }
    const double spawn_level = std::max(raw_height(spawn_x_m_, spawn_z_m_), 3.0);
    // Flatten footprints toward a level, with a soft rim. Works on wrapped distances.
    auto flatten = [&](double cx, double cz, double inner, double outer, double level) {
        const int r = static_cast<int>(std::ceil(outer)) + 1;
        for (int dz = -r; dz <= r; ++dz) {
            for (int dx = -r; dx <= r; ++dx) {
                const int ix = static_cast<int>(std::floor(cx)) + dx;
                const int iz = static_cast<int>(std::floor(cz)) + dz;
                const double d = std::hypot(ix - cx, iz - cz);
                if (d > outer) continue;
                double& v = h[index(ix, iz)];
                v = lerp(level, v, smoothstep(inner, outer, d));
            }
        }
    };
    flatten(spawn_x_m_, spawn_z_m_, kSpawnClearing, 3.0 * kSpawnClearing, spawn_level);
    // The lake: a bowl well below the water line.
    {
        const int r = static_cast<int>(lake_r * 1.4) + 1;
        for (int dz = -r; dz <= r; ++dz) {
            for (int dx = -r; dx <= r; ++dx) {
                const int ix = static_cast<int>(lake_x) + dx;
                const int iz = static_cast<int>(lake_z) + dz;
                const double d = std::hypot(ix - lake_x, iz - lake_z);
                const double t = smoothstep(0.55 * lake_r, 1.35 * lake_r, d);
                double& v = h[index(ix, iz)];
                const double bowl = -8.0 + 10.0 * (d / lake_r) * (d / lake_r);
                v = lerp(std::min(bowl, v), std::max(v, 1.0), t);
            }
        }
    }
    for (const Landmark& l : landmarks_) {
        if (l.kind == LandmarkKind::kTower || l.kind == LandmarkKind::kMonolith) {
            const double level =
                std::max(h[index(static_cast<int>(l.x_m), static_cast<int>(l.z_m))], 2.0);
            flatten(l.x_m, l.z_m, l.radius_m + 2.0, l.radius_m + 10.0, level);
        }
    }

    // ---- colours and biomes --------------------------------------------------------------------
    cells_.assign(count, Cell{0.0f, 0});
    ground_m_.assign(count, 0.0f);
    biomes_.assign(count, Biome::kGrass);
    std::vector<double> path_dist(count, 1e9);
    for (const Segment& s : paths) {
        const int x0 = static_cast<int>(std::floor(std::min(s.ax, s.bx) - 3));
        const int x1 = static_cast<int>(std::ceil(std::max(s.ax, s.bx) + 3));
        const int z0 = static_cast<int>(std::floor(std::min(s.az, s.bz) - 3));
        const int z1 = static_cast<int>(std::ceil(std::max(s.az, s.bz) + 3));
        for (int iz = z0; iz <= z1; ++iz) {
            for (int ix = x0; ix <= x1; ++ix) {
                double& d = path_dist[index(ix, iz)];
                d = std::min(d, distance_to_segment(ix, iz, s));
            }
        }
    }

    const Dir3 sun = sun_direction();
    const std::uint64_t s_moist = sub(5);
    const std::uint64_t s_tex = sub(6);
    const std::uint64_t s_tex2 = sub(7);
    for (int z = 0; z < n; ++z) {
        for (int x = 0; x < n; ++x) {
            const std::size_t i = index(x, z);
            const double v = h[i];
            const double gx = 0.5 * (h[index(x + 1, z)] - h[index(x - 1, z)]);
            const double gz = 0.5 * (h[index(x, z + 1)] - h[index(x, z - 1)]);
            const double slope = std::hypot(gx, gz);
            const double inv = 1.0 / std::sqrt(gx * gx + gz * gz + 1.0);
            const double lambert = std::max(0.0, (-gx * sun.x + sun.y - gz * sun.z) * inv);
            const double shade = 0.5 + 0.6 * lambert;
            const double moisture = detail::fbm_value(x, z, n, 128, 4, 0.5, s_moist);
            const double tex = detail::fbm_value(x, z, n, 4, 3, 0.6, s_tex);
            const double tex2 = detail::fbm_value(x, z, n, 32, 3, 0.5, s_tex2);

            Biome b;
            Rgb c;
            if (v < 0.0) {
                b = Biome::kWater;
                c = mix(Rgb{70, 150, 160}, Rgb{20, 45, 105}, std::clamp(-v / 6.0, 0.0, 1.0));
            } else if (path_dist[i] < kPathHalfWidth) {
                b = Biome::kPath;
                c = scale(Rgb{170, 140, 100}, shade * (0.95 + 0.1 * tex));
            } else if (v < 1.4 + 0.8 * tex) {
                b = Biome::kSand;
                c = scale(Rgb{215, 200, 145}, shade * (0.95 + 0.1 * tex));
            } else if (v > 80.0 + 12.0 * tex2) {
                b = Biome::kSnow;
                c = scale(Rgb{242, 246, 252}, shade * (0.97 + 0.06 * tex));
            } else if (slope > 1.1 || v > 58.0 + 14.0 * tex2) {
                b = Biome::kRock;
                c = scale(mix(Rgb{125, 118, 110}, Rgb{95, 92, 96}, 0.5 + 0.5 * tex2),
                          shade * (0.88 + 0.3 * tex));
            } else if (moisture < -0.28 && v < 30.0) {
                b = Biome::kSand;
                c = scale(Rgb{222, 190, 125}, shade * (0.93 + 0.14 * tex));
            } else if (moisture > 0.18 &&
                       std::hypot(wrapped_delta(x - spawn_x_m_, nd),
                                  wrapped_delta(z - spawn_z_m_, nd)) > kMeadowRadius) {
                b = Biome::kForest;
                c = scale(Rgb{45, 88, 38}, shade * (0.88 + 0.3 * tex));
            } else {
                b = Biome::kGrass;
                const Rgb lush{85, 150, 55};
                const Rgb dry{150, 160, 75};
                c = scale(mix(lush, dry, std::clamp(0.5 - 1.5 * moisture + 0.3 * tex2, 0.0, 1.0)),
                          shade * (0.88 + 0.3 * tex));
            }
            biomes_[i] = b;
            ground_m_[i] = static_cast<float>(std::max(v, 0.0));
            cells_[i].height_m = static_cast<float>(std::max(v, 0.0));
            cells_[i].colour = pack(c) | (b == Biome::kWater ? kWaterFlag : 0u);
        }
    }

    // ---- trees ---------------------------------------------------------------------------------
    Rng tree_rng(sub(8));
    auto add_tree = [&](double cx, double cz, double radius, double height, Rgb foliage) {
        const double base = ground_m_[index(static_cast<int>(cx), static_cast<int>(cz))];
        const int r = static_cast<int>(std::ceil(radius));
        for (int dz = -r; dz <= r; ++dz) {
            for (int dx = -r; dx <= r; ++dx) {
                const int ix = static_cast<int>(std::floor(cx)) + dx;
                const int iz = static_cast<int>(std::floor(cz)) + dz;
                const double d = std::hypot(ix + 0.5 - cx, iz + 0.5 - cz) / radius;
                if (d >= 1.0) continue;
                Cell& cell = cells_[index(ix, iz)];
                const double top = base + height * (0.6 + 0.4 * std::sqrt(1.0 - d * d));
                if (top <= cell.height_m) continue;
                // Lit on the sun's side of the crown.
                const double side = ((ix + 0.5 - cx) * sun.x + (iz + 0.5 - cz) * sun.z) / radius;
                cell.height_m = static_cast<float>(top);
                cell.colour = pack(scale(foliage, 0.75 + 0.3 * side + 0.15 * (1.0 - d)));
            }
        }
    };
    auto near_landmark = [&](double x, double z, double margin) {
        if (std::hypot(wrapped_delta(x - spawn_x_m_, nd), wrapped_delta(z - spawn_z_m_, nd)) <
            kSpawnClearing + margin)
            return true;
        for (const Landmark& l : landmarks_) {
            if (l.kind == LandmarkKind::kGrove) continue;
            if (std::hypot(wrapped_delta(x - l.x_m, nd), wrapped_delta(z - l.z_m, nd)) <
                l.radius_m + margin)
                return true;
        }
        return false;
    };
    constexpr int kTreeGrid = 6;
    for (int gz = 0; gz < n; gz += kTreeGrid) {
        for (int gx = 0; gx < n; gx += kTreeGrid) {
            const double cx = gx + tree_rng.uniform(0.0, kTreeGrid);
            const double cz = gz + tree_rng.uniform(0.0, kTreeGrid);
            const double p = tree_rng.uniform();
            const double radius = tree_rng.uniform(1.8, 3.2);
            const double height = tree_rng.uniform(7.0, 13.0);
            const double tint = tree_rng.uniform(0.8, 1.15);
            const std::size_t i = index(static_cast<int>(cx), static_cast<int>(cz));
            const Biome b = biomes_[i];
            const double chance = b == Biome::kForest ? 0.55 : (b == Biome::kGrass ? 0.025 : 0.0);
            if (p >= chance || path_dist[i] < kPathHalfWidth + radius || near_landmark(cx, cz, 6.0))
                continue;
            add_tree(cx, cz, radius, height, scale(Rgb{38, 95, 40}, tint));
        }
    }
    for (const Landmark& l : landmarks_) {
        if (l.kind != LandmarkKind::kGrove) continue;
        const Rgb foliage = unpack(l.rgb);
        for (int k = 0; k < 22; ++k) {
            const double a = tree_rng.uniform(0.0, 2.0 * kPi);
            const double d = l.radius_m * std::sqrt(tree_rng.uniform());
            add_tree(l.x_m + d * std::sin(a), l.z_m + d * std::cos(a), tree_rng.uniform(2.5, 3.8),
                     tree_rng.uniform(11.0, 16.0), scale(foliage, tree_rng.uniform(0.85, 1.1)));
        }
    }

    // ---- towers and monoliths ------------------------------------------------------------------
    for (const Landmark& l : landmarks_) {
        if (l.kind != LandmarkKind::kTower && l.kind != LandmarkKind::kMonolith) continue;
        const double base = ground_m_[index(static_cast<int>(l.x_m), static_cast<int>(l.z_m))];
        const int r = static_cast<int>(std::ceil(l.radius_m)) + 1;
        const double angle = l.kind == LandmarkKind::kMonolith ? tree_rng.uniform(0.0, kPi) : 0.0;
        const double ca = std::cos(angle);
        const double sa = std::sin(angle);
        for (int dz = -r; dz <= r; ++dz) {
            for (int dx = -r; dx <= r; ++dx) {
                const int ix = static_cast<int>(std::floor(l.x_m)) + dx;
                const int iz = static_cast<int>(std::floor(l.z_m)) + dz;
                const double ox = ix + 0.5 - l.x_m;
                const double oz = iz + 0.5 - l.z_m;
                Cell& cell = cells_[index(ix, iz)];
                if (l.kind == LandmarkKind::kTower) {
                    const double d = std::hypot(ox, oz);
                    if (d >= l.radius_m) continue;
                    const double wall = l.radius_m - 1.5;
                    const double side = d > 0.0 ? (ox * sun.x + oz * sun.z) / d : 0.0;
                    if (d > wall) {  // stone wall with the battlement's light side
                        cell.height_m = static_cast<float>(base + kTowerHeight);
                        cell.colour = pack(scale(Rgb{165, 160, 150}, 0.8 + 0.3 * side));
                    } else {  // red conical roof above the wall
                        cell.height_m =
                            static_cast<float>(base + kTowerHeight + 9.0 * (1.0 - d / wall));
                        cell.colour = pack(scale(unpack(l.rgb), 0.85 + 0.25 * side));
                    }
                } else {
                    const double u = ox * ca + oz * sa;   // along the long side
                    const double w = -ox * sa + oz * ca;  // across
                    if (std::abs(u) >= kMonolithHalfLength || std::abs(w) >= kMonolithHalfWidth)
                        continue;
                    // Shade by the face the cell belongs to, so that the block reads as a box.
                    const bool long_face =
                        std::abs(w) / kMonolithHalfWidth > std::abs(u) / kMonolithHalfLength;
                    const double nx = long_face ? -sa * (w > 0 ? 1 : -1) : ca * (u > 0 ? 1 : -1);
                    const double nz = long_face ? ca * (w > 0 ? 1 : -1) : sa * (u > 0 ? 1 : -1);
                    cell.height_m = static_cast<float>(base + kMonolithHeight);
                    cell.colour =
                        pack(scale(unpack(l.rgb), 0.8 + 0.25 * (nx * sun.x + nz * sun.z)));
                }
            }
        }
    }
}

double World::ground_height_m(double x_m, double z_m) const {
    const double fx = std::floor(x_m);
    const double fz = std::floor(z_m);
    const int ix = static_cast<int>(static_cast<std::int64_t>(fx) & (size_ - 1));
    const int iz = static_cast<int>(static_cast<std::int64_t>(fz) & (size_ - 1));
    const double tx = x_m - fx;
    const double tz = z_m - fz;
    const double h00 = ground_m_[index(ix, iz)];
    const double h10 = ground_m_[index(ix + 1, iz)];
    const double h01 = ground_m_[index(ix, iz + 1)];
    const double h11 = ground_m_[index(ix + 1, iz + 1)];
    return lerp(lerp(h00, h10, tx), lerp(h01, h11, tx), tz);
}

Biome World::biome_at(double x_m, double z_m) const {
    const auto ix = static_cast<int>(static_cast<std::int64_t>(std::floor(x_m)) & (size_ - 1));
    const auto iz = static_cast<int>(static_cast<std::int64_t>(std::floor(z_m)) & (size_ - 1));
    return biomes_[index(ix, iz)];
}

double World::map_x_m(const input::CameraState& s) const {
    return s.position.x * config_.metres_per_unit + spawn_x_m_;
}

double World::map_z_m(const input::CameraState& s) const {
    return s.position.z * config_.metres_per_unit + spawn_z_m_;
}

double World::altitude_m(const input::CameraState& s) const {
    return -s.position.y * config_.metres_per_unit;
}

input::CameraState World::on_ground(const input::CameraState& state) const {
    input::CameraState out = state;
    const double ground = ground_height_m(map_x_m(state), map_z_m(state));
    out.position.y = -(ground + config_.eye_height_m) / config_.metres_per_unit;
    return out;
}

input::CameraState World::spawn() const { return on_ground(input::CameraState{}); }

}  // namespace qvg::world
