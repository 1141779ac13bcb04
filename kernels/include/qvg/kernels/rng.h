#pragma once
// The codec's private random stream (SplitMix64 seeding a xoshiro256**), shared by the host
// (qvg::core::Rng) and the k-means initialisation kernel so that both draw the same numbers for
// a seed. Plain 64-bit integer arithmetic: bit-identical on every platform and on the GPU.

#include <cstdint>

#ifdef __CUDACC__
#define QVG_HOST_DEVICE __host__ __device__
#else
#define QVG_HOST_DEVICE
#endif

namespace qvg::kernels {

QVG_HOST_DEVICE inline uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Mixes two values into one seed (per-layer / per-head / per-stage streams).
QVG_HOST_DEVICE inline uint64_t mix_seed(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    return splitmix64(x);
}

struct Xoshiro256 {
    uint64_t s[4];

    Xoshiro256() = default;  // state set by the caller
    QVG_HOST_DEVICE explicit Xoshiro256(uint64_t seed) {
        for (auto& v : s) v = splitmix64(seed);
    }

    QVG_HOST_DEVICE static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

    QVG_HOST_DEVICE uint64_t next() {
        const uint64_t result = rotl(s[1] * 5, 7) * 9;
        const uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }

    // Uniform in [0, bound), bound > 0, without modulo bias (rejection).
    QVG_HOST_DEVICE uint64_t below(uint64_t bound) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
        uint64_t r;
        do {
            r = next();
        } while (r >= limit);
        return r % bound;
    }
};

}  // namespace qvg::kernels
