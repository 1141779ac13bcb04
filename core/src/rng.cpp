#include "qvg/core/rng.h"

#include <cstddef>
#include <unordered_set>

namespace qvg::core {
namespace {

uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) {
    for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

uint64_t Rng::below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do {
        r = next();
    } while (r >= limit);
    return r % bound;
}

std::vector<int64_t> Rng::distinct(int64_t n, int64_t count) {
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(count));
    std::unordered_set<int64_t> taken;
    for (int64_t j = n - count; j < n; ++j) {
        const auto t = static_cast<int64_t>(below(static_cast<uint64_t>(j) + 1));
        const int64_t pick = taken.count(t) ? j : t;
        taken.insert(pick);
        out.push_back(pick);
    }
    return out;
}

uint64_t Rng::mix(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    return splitmix64(x);
}

}  // namespace qvg::core
