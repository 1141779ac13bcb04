#include "noise.h"

#include <algorithm>
#include <cmath>

namespace qvg::world::detail {
namespace {

double fade(double t) { return t * t * t * (t * (t * 6.0 - 15.0) + 10.0); }

int wrap(std::int64_t i, int period) {
    const std::int64_t m = i % period;
    return static_cast<int>(m < 0 ? m + period : m);
}

// Eight unit gradient directions, picked by hash.
constexpr double kDiag = 0.70710678118654752;
constexpr double kGradX[8] = {1, -1, 0, 0, kDiag, -kDiag, kDiag, -kDiag};
constexpr double kGradY[8] = {0, 0, 1, -1, kDiag, kDiag, -kDiag, -kDiag};

double lattice_gradient_dot(std::int64_t ix, std::int64_t iy, int period, std::uint64_t seed,
                            double dx, double dy) {
    const std::uint64_t h = hash2(wrap(ix, period), wrap(iy, period), seed) >> 61;
    return kGradX[h] * dx + kGradY[h] * dy;
}

}  // namespace

std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::uint64_t hash2(std::int64_t ix, std::int64_t iy, std::uint64_t seed) {
    return mix64(mix64(seed ^ static_cast<std::uint64_t>(ix)) ^
                 (static_cast<std::uint64_t>(iy) * 0xd1b54a32d192ed03ull));
}

double unit(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

double value_noise(double x, double y, int period, std::uint64_t seed) {
    const double fx = std::floor(x);
    const double fy = std::floor(y);
    const auto ix = static_cast<std::int64_t>(fx);
    const auto iy = static_cast<std::int64_t>(fy);
    const double u = fade(x - fx);
    const double v = fade(y - fy);
    auto at = [&](std::int64_t a, std::int64_t b) {
        return 2.0 * unit(hash2(wrap(a, period), wrap(b, period), seed)) - 1.0;
    };
    const double top = at(ix, iy) + u * (at(ix + 1, iy) - at(ix, iy));
    const double bottom = at(ix, iy + 1) + u * (at(ix + 1, iy + 1) - at(ix, iy + 1));
    return top + v * (bottom - top);
}

double gradient_noise(double x, double y, int period, std::uint64_t seed) {
    const double fx = std::floor(x);
    const double fy = std::floor(y);
    const auto ix = static_cast<std::int64_t>(fx);
    const auto iy = static_cast<std::int64_t>(fy);
    const double dx = x - fx;
    const double dy = y - fy;
    const double u = fade(dx);
    const double v = fade(dy);
    const double g00 = lattice_gradient_dot(ix, iy, period, seed, dx, dy);
    const double g10 = lattice_gradient_dot(ix + 1, iy, period, seed, dx - 1.0, dy);
    const double g01 = lattice_gradient_dot(ix, iy + 1, period, seed, dx, dy - 1.0);
    const double g11 = lattice_gradient_dot(ix + 1, iy + 1, period, seed, dx - 1.0, dy - 1.0);
    const double top = g00 + u * (g10 - g00);
    const double bottom = g01 + u * (g11 - g01);
    // Scaled so that the typical range is about [-1, 1].
    return 1.4 * (top + v * (bottom - top));
}

namespace {

template <class Noise>
double fractal(double x, double y, int map_size, int wavelength, int octaves, double gain,
               std::uint64_t seed, Noise noise) {
    double sum = 0.0;
    double norm = 0.0;
    double amp = 1.0;
    wavelength = std::min(wavelength, map_size);  // small maps: the first octave spans the map
    for (int o = 0; o < octaves && wavelength >= 1; ++o) {
        const int period = map_size / wavelength;
        sum += amp * noise(x / wavelength, y / wavelength, period, mix64(seed + 977u * o));
        norm += amp;
        amp *= gain;
        wavelength /= 2;
    }
    return norm > 0.0 ? sum / norm : 0.0;
}

}  // namespace

double fbm_gradient(double x, double y, int map_size, int wavelength, int octaves, double gain,
                    std::uint64_t seed) {
    return fractal(x, y, map_size, wavelength, octaves, gain, seed, gradient_noise);
}

double fbm_value(double x, double y, int map_size, int wavelength, int octaves, double gain,
                 std::uint64_t seed) {
    return fractal(x, y, map_size, wavelength, octaves, gain, seed, value_noise);
}

double fbm_ridged(double x, double y, int map_size, int wavelength, int octaves,
                  std::uint64_t seed) {
    auto ridge = [](double px, double py, int period, std::uint64_t s) {
        const double r = 1.0 - std::abs(gradient_noise(px, py, period, s));
        return r * r;
    };
    return fractal(x, y, map_size, wavelength, octaves, 0.5, seed, ridge);
}

std::uint64_t Rng::next() {
    const std::uint64_t s = state_;
    state_ += 0x9e3779b97f4a7c15ull;
    return mix64(s);
}

}  // namespace qvg::world::detail
