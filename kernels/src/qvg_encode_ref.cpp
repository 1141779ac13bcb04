#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "bf16_bits.h"
#include "fp8_bits.h"
#include "qvg/kernels/qvg_encode.h"
#include "qvg/kernels/rng.h"
#include "range_bits.h"

namespace qvg::kernels {

void kmeans_update_reference(const KMeansUpdateParams& p) {
    std::vector<float> sum(static_cast<size_t>(p.groups * p.centroids * p.dim), 0.0f);
    std::vector<int64_t> count(static_cast<size_t>(p.groups * p.centroids), 0);
    for (int64_t g = 0; g < p.groups; ++g) {
        for (int64_t n = 0; n < p.tokens; ++n) {  // token order
            const int64_t c = g * p.centroids + p.ids[g * p.tokens + n];
            const uint16_t* row = p.x + (g * p.tokens + n) * p.dim;
            float* acc = sum.data() + c * p.dim;
            for (int64_t d = 0; d < p.dim; ++d) acc[d] += detail::bf16_to_float(row[d]);
            ++count[static_cast<size_t>(c)];
        }
    }
    for (int64_t c = 0; c < p.groups * p.centroids; ++c) {
        uint16_t* out = p.out + c * p.dim;
        const uint16_t* old = p.old + c * p.dim;
        const int64_t k = count[static_cast<size_t>(c)];
        if (p.counts != nullptr) p.counts[c] = static_cast<int32_t>(k);
        for (int64_t d = 0; d < p.dim; ++d) {
            out[d] = k == 0 ? old[d]
                            : detail::float_to_bf16(sum[static_cast<size_t>(c * p.dim + d)] /
                                                    static_cast<float>(k));
        }
    }
}

namespace {

// The kernel's warp sum of squares: lane partial sums, then a xor butterfly.
float row_norm2_warp_order(const uint16_t* row, int64_t dim) {
    float lane[32];
    for (int l = 0; l < 32; ++l) {
        float s = 0.0f;
        for (int64_t j = 0; j < dim / 64; ++j) {
            const float a = detail::bf16_to_float(row[2 * l + 64 * j]);
            const float b = detail::bf16_to_float(row[2 * l + 64 * j + 1]);
            s += a * a;
            s += b * b;
        }
        lane[l] = s;
    }
    for (int off = 16; off > 0; off >>= 1) {
        float next[32];
        for (int l = 0; l < 32; ++l) next[l] = lane[l] + lane[l ^ off];
        std::copy(next, next + 32, lane);
    }
    return lane[0];
}

}  // namespace

void assign_reference(const AssignParams& p) {
    const int64_t c_count = p.num_centroids, dim = p.dim;
    std::vector<float> cn(static_cast<size_t>(c_count));
    for (int64_t g = 0; g < p.groups; ++g) {
        const uint16_t* cent = p.centroids + g * c_count * dim;
        for (int64_t c = 0; c < c_count; ++c) {
            cn[static_cast<size_t>(c)] = row_norm2_warp_order(cent + c * dim, dim);
        }
        for (int64_t n = 0; n < p.tokens; ++n) {
            const uint16_t* x = p.x + (g * p.tokens + n) * dim;
            const float xn = row_norm2_warp_order(x, dim);
            float best = 0.0f;
            int64_t idx = -1;
            for (int64_t c = 0; c < c_count; ++c) {
                float dot = 0.0f;
                for (int64_t d = 0; d < dim; ++d)
                    dot += detail::bf16_to_float(x[d]) * detail::bf16_to_float(cent[c * dim + d]);
                const float m = -2.0f * dot;
                const float score = cn[static_cast<size_t>(c)] + m;
                if (idx < 0 || score < best) {
                    best = score;
                    idx = c;
                }
            }
            if (p.ids != nullptr) p.ids[g * p.tokens + n] = idx;
            if (p.ids_u8 != nullptr) p.ids_u8[g * p.tokens + n] = static_cast<uint8_t>(idx);
            if (p.dist != nullptr) {
                const float d = best + xn;
                p.dist[g * p.tokens + n] = d > 0.0f ? d : 0.0f;
            }
        }
    }
}

namespace {

// One value's stored code u and its decoded value (without any stage's centroid).
float quantize_value(bool asym, int qmax, float v, float s, float z, int& u) {
    float q;
    if (!asym) {
        if (s == 0.0f) {
            q = v < 0 ? -static_cast<float>(qmax) : static_cast<float>(qmax);
        } else {
            q = std::fmin(std::fmax(detail::round_half_away(v / s), -static_cast<float>(qmax)),
                          static_cast<float>(qmax));
        }
        u = static_cast<int>(q) + qmax;
        const float y = q * s;
        return y + 0.0f;
    }
    q = s == 0.0f ? 0.0f
                  : std::fmin(std::fmax(detail::round_half_away((v - z) / s), 0.0f),
                              static_cast<float>(qmax));
    u = static_cast<int>(q);
    const float y = q * s;
    return y + z;
}

// A group's squared error sum((y - r)^2) under one range, in the CUDA kernel's order: each run
// of 8 channels (one thread's) summed in turn, then the runs added pairwise by a xor butterfly.
float clip_error(const ResidualQuantParams& p, int qmax, const float* rg, uint8_t s8, uint8_t z8) {
    const float s = detail::fp8_e4m3_to_float(s8);
    const float z = p.asymmetric ? detail::fp8_e4m3_to_float(z8) : 0.0f;
    constexpr int kRun = 8;
    std::vector<float> part(static_cast<size_t>(p.group / kRun), 0.0f);
    for (int i = 0; i < p.group; ++i) {
        int u = 0;
        const float e = quantize_value(p.asymmetric, qmax, rg[i], s, z, u) - rg[i];
        part[static_cast<size_t>(i / kRun)] += e * e;
    }
    for (size_t off = 1; off < part.size(); off <<= 1) {
        std::vector<float> next(part.size());
        for (size_t l = 0; l < part.size(); ++l) next[l] = part[l] + part[l ^ off];
        part.swap(next);
    }
    return part.front();
}

}  // namespace

void residual_quant_reference(const ResidualQuantParams& p) {
    const int per_byte = 8 / p.bits;
    const int qmax = p.asymmetric ? (1 << p.bits) - 1 : (1 << (p.bits - 1)) - 1;
    const float inv = 1.0f / static_cast<float>(qmax);
    const int64_t groups_per_row = p.dim / p.group;
    std::vector<float> r(static_cast<size_t>(p.dim)), c(static_cast<size_t>(p.dim));
    std::vector<int> u(static_cast<size_t>(p.dim));
    std::vector<float> x_row(static_cast<size_t>(p.dim));
    for (int64_t g = 0; g < p.groups; ++g) {
        for (int64_t n = 0; n < p.tokens; ++n) {
            const int64_t row = g * p.tokens + n;
            const float* x = p.x != nullptr ? p.x + row * p.dim : x_row.data();
            if (p.x == nullptr) {
                for (int64_t d = 0; d < p.dim; ++d)
                    x_row[static_cast<size_t>(d)] =
                        detail::bf16_to_float(p.x_bf16[row * p.dim + d]);
            }
            for (int64_t d = 0; d < p.dim; ++d) {
                c[static_cast<size_t>(d)] = 0.0f;
                if (p.ids != nullptr) {
                    c[static_cast<size_t>(d)] = detail::bf16_to_float(
                        p.centroids[(g * p.num_centroids + p.ids[row]) * p.dim + d]);
                    r[static_cast<size_t>(d)] = detail::bf16_to_float(
                        detail::float_to_bf16(x[d] - c[static_cast<size_t>(d)]));
                } else {
                    r[static_cast<size_t>(d)] = x[d];
                }
            }
            float res_sq = 0.0f, err_sq = 0.0f, in_sq = 0.0f;
            for (int64_t k = 0; k < groups_per_row; ++k) {
                const float* rg = r.data() + k * p.group;
                float amax = 0.0f, lo = rg[0], hi = rg[0];
                for (int i = 0; i < p.group; ++i) {
                    amax = std::fmax(amax, std::fabs(rg[i]));
                    lo = std::fmin(lo, rg[i]);
                    hi = std::fmax(hi, rg[i]);
                }
                uint8_t s8 = 0, z8 = 0;
                detail::range_bits(p.asymmetric, amax, lo, hi, 0, inv, s8, z8);
                if (p.clip_search) {
                    float best = clip_error(p, qmax, rg, s8, z8);
                    for (int cand = 1; cand <= kClipSteps; ++cand) {
                        uint8_t cs8 = 0, cz8 = 0;
                        detail::range_bits(p.asymmetric, amax, lo, hi, cand, inv, cs8, cz8);
                        const float e = clip_error(p, qmax, rg, cs8, cz8);
                        if (e < best) {  // the first range of least error
                            best = e;
                            s8 = cs8;
                            z8 = cz8;
                        }
                    }
                }
                p.scales[row * groups_per_row + k] = s8;
                if (p.asymmetric) p.zeros[row * groups_per_row + k] = z8;
                const float s = detail::fp8_e4m3_to_float(s8);
                const float z = p.asymmetric ? detail::fp8_e4m3_to_float(z8) : 0.0f;
                for (int i = 0; i < p.group; ++i) {
                    const int64_t d = k * p.group + i;
                    const float v = rg[i];
                    float y =
                        quantize_value(p.asymmetric, qmax, v, s, z, u[static_cast<size_t>(d)]);
                    if (p.ids != nullptr) y = y + c[static_cast<size_t>(d)];
                    const float xh = detail::bf16_to_float(detail::float_to_bf16(y));
                    res_sq += v * v;
                    err_sq += (x[d] - xh) * (x[d] - xh);
                    in_sq += x[d] * x[d];
                }
            }
            uint8_t* codes = p.codes + row * (p.dim / per_byte);
            for (int64_t j = 0; j < p.dim / per_byte; ++j) {
                int byte = 0;
                for (int i = 0; i < per_byte; ++i)
                    byte = (byte << p.bits) | u[static_cast<size_t>(j * per_byte + i)];
                codes[j] = static_cast<uint8_t>(byte);
            }
            if (p.residual_sq) p.residual_sq[row] = res_sq;
            if (p.error_sq) p.error_sq[row] = err_sq;
            if (p.input_sq) p.input_sq[row] = in_sq;
        }
    }
}

void kmeans_init_reference(const KMeansInitParams& p) {
    std::vector<int64_t> picks;
    for (int64_t g = 0; g < p.groups; ++g) {
        Xoshiro256 rng(
            mix_seed(p.seed, static_cast<uint64_t>(p.seed_period > 0 ? g % p.seed_period : g)));
        picks.clear();
        for (int64_t j = p.tokens - p.num_centroids; j < p.tokens; ++j) {  // Floyd
            const auto t = static_cast<int64_t>(rng.below(static_cast<uint64_t>(j) + 1));
            const bool taken = std::find(picks.begin(), picks.end(), t) != picks.end();
            picks.push_back(taken ? j : t);
        }
        for (int64_t c = 0; c < p.num_centroids; ++c) {
            std::memcpy(p.centroids + (g * p.num_centroids + c) * p.dim,
                        p.x + (g * p.tokens + picks[static_cast<size_t>(c)]) * p.dim,
                        static_cast<size_t>(p.dim) * sizeof(uint16_t));
        }
    }
}

void kmeans_reseed_reference(const KMeansReseedParams& p) {
    std::vector<int64_t> order(static_cast<size_t>(p.tokens));
    for (int64_t g = 0; g < p.groups; ++g) {
        const float* dist = p.dist + g * p.tokens;
        bool any = false;
        for (int64_t c = 0; c < p.num_centroids; ++c) any |= p.counts[g * p.num_centroids + c] == 0;
        if (!any) continue;
        std::iota(order.begin(), order.end(), int64_t{0});
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return dist[a] > dist[b]; });
        int64_t k = 0;  // k-th empty cluster
        for (int64_t c = 0; c < p.num_centroids; ++c) {
            if (p.counts[g * p.num_centroids + c] != 0) continue;
            std::memcpy(p.centroids + (g * p.num_centroids + c) * p.dim,
                        p.x + (g * p.tokens + order[static_cast<size_t>(k++)]) * p.dim,
                        static_cast<size_t>(p.dim) * sizeof(uint16_t));
        }
    }
}

}  // namespace qvg::kernels
