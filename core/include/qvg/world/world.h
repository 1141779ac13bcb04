#pragma once
// The built-in world: a deterministic, seeded heightfield terrain with biomes, water, paths and
// landmarks, the ground truth that the default world model is trained on and judged against.
//
// Axes. The world uses the camera-pose frame of input/ (OpenCV: x right, y down, z forward of a
// level camera at the origin), scaled by metres_per_unit: the ground plane is x-z and UP IS -y.
// A pose position (x, y, z) in units is the map point (x, z) * metres_per_unit + spawn point,
// at altitude -y * metres_per_unit metres above sea level (the water surface is at 0 m).
// The map is a torus of map_size x map_size one-metre cells: walking off one edge enters the
// opposite one.

#include <qvg/input/camera.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qvg::world {

struct WorldConfig {
    std::uint64_t seed = 1;
    int map_size = 1024;            // cells (metres) per side; a power of two, 256..8192
    double metres_per_unit = 25.0;  // pose units -> metres: 0.08 units per latent = 2 m
    double eye_height_m = 1.8;      // camera above the ground when walking
};

enum class Biome : std::uint8_t { kWater, kSand, kGrass, kForest, kRock, kSnow, kPath };

enum class LandmarkKind : std::uint8_t { kTower, kMonolith, kGrove, kLake };

struct Landmark {
    LandmarkKind kind;
    std::string name;  // "red monolith", "tower 2", "lake", ...
    double x_m = 0.0;  // map position of its centre (metres, before wrapping)
    double z_m = 0.0;
    double radius_m = 0.0;
    std::uint32_t rgb = 0;  // its characteristic colour, 0xRRGGBB
};

// A map cell as the renderer reads it.
struct Cell {
    float height_m;  // top of what is drawn here: terrain, tree crown, tower, or water surface
    std::uint32_t colour;  // 0xRRGGBB with lighting baked in; bit 24 set for water
};
inline constexpr std::uint32_t kWaterFlag = 1u << 24;

class World {
  public:
    // Generates the map (about a second for 1024 x 1024 on one core). Throws
    // std::invalid_argument for a map size that is not a power of two in 256..8192 or a
    // non-positive scale or eye height.
    explicit World(const WorldConfig& config);

    const WorldConfig& config() const { return config_; }
    int map_size() const { return size_; }

    // Walkable ground (terrain without trees and buildings; water counts at its surface), in
    // metres, bilinear between cells, at a map point in metres (any value: the map wraps).
    double ground_height_m(double x_m, double z_m) const;
    Biome biome_at(double x_m, double z_m) const;
    const Cell& cell(int ix, int iz) const { return cells_[index(ix, iz)]; }
    const std::vector<Landmark>& landmarks() const { return landmarks_; }

    // Pose <-> map. The spawn point (a clearing with the lake ahead along +z) is pose (0, y, 0).
    double map_x_m(const input::CameraState& s) const;
    double map_z_m(const input::CameraState& s) const;
    double altitude_m(const input::CameraState& s) const;  // -y * metres_per_unit

    // The camera placed eye_height_m above the ground under it (only position.y changes).
    input::CameraState on_ground(const input::CameraState& state) const;
    // A level camera at the spawn point, standing on the ground, looking along +z.
    input::CameraState spawn() const;

    std::size_t index(int ix, int iz) const {
        const int m = size_ - 1;
        return static_cast<std::size_t>(iz & m) * static_cast<std::size_t>(size_) +
               static_cast<std::size_t>(ix & m);
    }

  private:
    void generate();

    WorldConfig config_;
    int size_ = 0;
    double spawn_x_m_ = 0.0;
    double spawn_z_m_ = 0.0;
    std::vector<Cell> cells_;      // [map_size * map_size], row = z
    std::vector<float> ground_m_;  // [map_size * map_size]
    std::vector<Biome> biomes_;    // [map_size * map_size]
    std::vector<Landmark> landmarks_;
};

}  // namespace qvg::world
