#include "qvg/core/rng.h"

#include <algorithm>
#include <cstddef>
#include <unordered_set>

#include "qvg/kernels/rng.h"

namespace qvg::core {

// The arithmetic lives in qvg/kernels/rng.h, where the k-means initialisation kernel uses it too.
namespace {

template <class F>
uint64_t on_stream(uint64_t (&state)[4], F f) {
    kernels::Xoshiro256 x;
    std::copy(state, state + 4, x.s);
    const uint64_t r = f(x);
    std::copy(x.s, x.s + 4, state);
    return r;
}

}  // namespace

Rng::Rng(uint64_t seed) {
    const kernels::Xoshiro256 x(seed);
    std::copy(x.s, x.s + 4, s_);
}

uint64_t Rng::next() {
    return on_stream(s_, [](kernels::Xoshiro256& x) { return x.next(); });
}

uint64_t Rng::below(uint64_t bound) {
    return on_stream(s_, [bound](kernels::Xoshiro256& x) { return x.below(bound); });
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

uint64_t Rng::mix(uint64_t a, uint64_t b) { return kernels::mix_seed(a, b); }

}  // namespace qvg::core
