#pragma once
// Seeded, periodic 2D noise for the terrain. Every function is a pure function of its arguments,
// so that a world is the same on every run and platform (no std:: distributions, whose output
// the standard leaves to each library).

#include <cstdint>

namespace qvg::world::detail {

// A 64-bit mix of a value (SplitMix64's finaliser constants).
std::uint64_t mix64(std::uint64_t x);
// Hash of an integer lattice point under a seed.
std::uint64_t hash2(std::int64_t ix, std::int64_t iy, std::uint64_t seed);
// Uniform in [0, 1) from a hash.
double unit(std::uint64_t h);

// Noise at (x, y) in lattice units, periodic with `period` lattice cells in both axes (so that
// the map wraps without a seam). Value noise is in [-1, 1]; gradient noise roughly so.
double value_noise(double x, double y, int period, std::uint64_t seed);
double gradient_noise(double x, double y, int period, std::uint64_t seed);

// Fractal sums over octaves: the first octave has lattice spacing `wavelength` map cells (a power
// of two dividing map_size), each further one half the spacing and `gain` times the amplitude.
// Normalised by the total amplitude.
double fbm_gradient(double x, double y, int map_size, int wavelength, int octaves, double gain,
                    std::uint64_t seed);
double fbm_value(double x, double y, int map_size, int wavelength, int octaves, double gain,
                 std::uint64_t seed);
// Ridged fractal in [0, 1]: sharp crests where the gradient noise crosses zero (mountain chains).
double fbm_ridged(double x, double y, int map_size, int wavelength, int octaves,
                  std::uint64_t seed);

// A small deterministic generator (SplitMix64) for placing things and for random walks.
class Rng {
  public:
    explicit Rng(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next();
    double uniform() { return unit(next()); }  // [0, 1)
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    int below(int n) { return static_cast<int>(uniform() * n); }  // [0, n)

  private:
    std::uint64_t state_;
};

}  // namespace qvg::world::detail
