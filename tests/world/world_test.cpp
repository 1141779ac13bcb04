#include <qvg/world/world.h>

#include "world_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <stdexcept>

namespace qvg::world {
namespace {

TEST(World, SameSeedSameMapDifferentSeedDifferentMap) {
    const World a(WorldConfig{7, 256, 25.0, 1.8});
    const World b(WorldConfig{7, 256, 25.0, 1.8});
    const World c(WorldConfig{8, 256, 25.0, 1.8});
    int differ = 0;
    for (int z = 0; z < 256; ++z) {
        for (int x = 0; x < 256; ++x) {
            ASSERT_EQ(a.cell(x, z).height_m, b.cell(x, z).height_m);
            ASSERT_EQ(a.cell(x, z).colour, b.cell(x, z).colour);
            differ += a.cell(x, z).colour != c.cell(x, z).colour;
        }
    }
    EXPECT_GT(differ, 256 * 256 / 2);
}

TEST(World, HasEveryBiomeAndTheLandmarks) {
    const World& w = test_world(1);
    std::set<Biome> biomes;
    for (int z = 0; z < w.map_size(); ++z) {
        for (int x = 0; x < w.map_size(); ++x) biomes.insert(w.biome_at(x, z));
    }
    for (Biome b :
         {Biome::kWater, Biome::kSand, Biome::kGrass, Biome::kForest, Biome::kRock, Biome::kPath}) {
        EXPECT_TRUE(biomes.count(b)) << "biome " << int(b) << " missing";
    }
    int towers = 0, monoliths = 0, groves = 0, lakes = 0;
    for (const Landmark& l : w.landmarks()) {
        towers += l.kind == LandmarkKind::kTower;
        monoliths += l.kind == LandmarkKind::kMonolith;
        groves += l.kind == LandmarkKind::kGrove;
        lakes += l.kind == LandmarkKind::kLake;
        if (l.kind == LandmarkKind::kLake) {
            EXPECT_EQ(w.biome_at(l.x_m, l.z_m), Biome::kWater);
        }
        if (l.kind == LandmarkKind::kTower || l.kind == LandmarkKind::kMonolith) {
            // They stand well above the ground around them.
            const Cell& c = w.cell(int(std::floor(l.x_m)), int(std::floor(l.z_m)));
            EXPECT_GT(c.height_m, w.ground_height_m(l.x_m, l.z_m) + 15.0) << l.name;
        }
    }
    EXPECT_EQ(towers, 4);
    EXPECT_EQ(monoliths, 6);
    EXPECT_EQ(groves, 3);
    EXPECT_EQ(lakes, 1);
}

TEST(World, GroundWrapsAndCameraStandsOnIt) {
    const World& w = test_world(1);
    const double n = w.map_size();
    EXPECT_DOUBLE_EQ(w.ground_height_m(10.25, 20.5), w.ground_height_m(10.25 + n, 20.5 - n));
    const input::CameraState s = w.spawn();
    EXPECT_NEAR(w.altitude_m(s) - w.ground_height_m(w.map_x_m(s), w.map_z_m(s)), 1.8, 1e-9);
    EXPECT_EQ(s.position.x, 0.0);
    EXPECT_EQ(s.position.z, 0.0);
    EXPECT_GE(w.ground_height_m(w.map_x_m(s), w.map_z_m(s)), 0.0);
    EXPECT_NE(w.biome_at(w.map_x_m(s), w.map_z_m(s)), Biome::kWater);
}

TEST(World, RejectsBadConfigs) {
    EXPECT_THROW(World(WorldConfig{1, 300, 25.0, 1.8}), std::invalid_argument);
    EXPECT_THROW(World(WorldConfig{1, 128, 25.0, 1.8}), std::invalid_argument);
    EXPECT_THROW(World(WorldConfig{1, 256, 0.0, 1.8}), std::invalid_argument);
    EXPECT_THROW(World(WorldConfig{1, 256, 25.0, -1.0}), std::invalid_argument);
}

}  // namespace
}  // namespace qvg::world
