#pragma once
// Shared by the world suites: one world per seed (generation takes a while), image statistics and
// a PPM writer for looking at frames.

#include <qvg/world/renderer.h>
#include <qvg/world/world.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

namespace qvg::world {

// The worlds of the suites: 512 x 512 maps, cached per seed.
inline const World& test_world(std::uint64_t seed) {
    static std::map<std::uint64_t, std::unique_ptr<World>> worlds;
    auto& w = worlds[seed];
    if (!w) w = std::make_unique<World>(WorldConfig{seed, 512, 25.0, 1.8});
    return *w;
}

struct Stats {
    double r = 0, g = 0, b = 0;  // mean per channel
};

// Mean colour of rows [y0, y1) and columns [x0, x1).
inline Stats region_mean(const Image& im, int x0, int y0, int x1, int y1) {
    Stats s;
    double n = 0;
    for (int y = y0; y < y1; ++y) {
        for (int x = x0; x < x1; ++x) {
            const std::uint8_t* p = &im.rgb[(std::size_t(y) * im.width + x) * 3];
            s.r += p[0];
            s.g += p[1];
            s.b += p[2];
            n += 1;
        }
    }
    s.r /= n;
    s.g /= n;
    s.b /= n;
    return s;
}

inline double mean_abs_diff(const Image& a, const Image& b) {
    double sum = 0;
    for (std::size_t i = 0; i < a.rgb.size(); ++i) sum += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
    return sum / double(a.rgb.size());
}

inline void write_ppm(const std::filesystem::path& path, const Image& im) {
    std::ofstream out(path, std::ios::binary);
    out << "P6\n" << im.width << " " << im.height << "\n255\n";
    out.write(reinterpret_cast<const char*>(im.rgb.data()), std::streamsize(im.rgb.size()));
}

}  // namespace qvg::world
