#pragma once
// A small, fully specified random stream (SplitMix64 seeding a xoshiro256**), private to the
// codec so that k-means never touches the model's noise generator and replays bit for bit on
// every platform (std::uniform_int_distribution is implementation-defined, so it is not used).

#include <cstdint>
#include <vector>

namespace qvg::core {

class Rng {
  public:
    explicit Rng(uint64_t seed);
    uint64_t next();
    // Uniform in [0, bound), bound > 0, without modulo bias.
    uint64_t below(uint64_t bound);
    // `count` distinct values of [0, n) in a deterministic order (Floyd's algorithm).
    std::vector<int64_t> distinct(int64_t n, int64_t count);

    // Mixes several values into one seed (for per-layer / per-head / per-stage streams).
    static uint64_t mix(uint64_t a, uint64_t b);

  private:
    uint64_t s_[4];
};

}  // namespace qvg::core
