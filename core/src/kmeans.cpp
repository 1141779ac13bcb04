#include "qvg/core/kmeans.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "qvg/core/error.h"
#include "qvg/core/rng.h"

namespace qvg::core {
namespace {

// Rows of x per distance block: bounds the [G, rows, C] score matrix (~64 MiB at G=12, C=256).
constexpr int64_t kAssignRows = 8192;

at::Tensor random_init(const at::Tensor& x, int64_t centroids, uint64_t seed) {
    const int64_t groups = x.size(0);
    const int64_t n = x.size(1);
    std::vector<int64_t> index;
    index.reserve(static_cast<size_t>(groups * centroids));
    for (int64_t g = 0; g < groups; ++g) {
        Rng rng(Rng::mix(seed, static_cast<uint64_t>(g)));
        auto picks = rng.distinct(n, centroids);
        index.insert(index.end(), picks.begin(), picks.end());
    }
    at::Tensor idx = at::tensor(index, at::kLong).view({groups, centroids}).to(x.device());
    return x.gather(1, idx.unsqueeze(-1).expand({groups, centroids, x.size(2)}));
}

at::Tensor update_centroids(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& old) {
    const int64_t groups = x.size(0), n = x.size(1), dim = x.size(2), c = old.size(1);
    at::Tensor sums;
    at::Tensor counts;
    if (x.is_cuda()) {
        // One-hot product: a deterministic reduction (cuBLAS, no atomics).
        at::Tensor onehot = at::zeros({groups, c, n}, x.options());
        onehot.scatter_(1, ids.unsqueeze(1), 1.0f);
        sums = at::bmm(onehot, x);
        counts = onehot.sum(-1);
    } else {
        at::Tensor offset = at::arange(groups, ids.options()).mul_(c).unsqueeze(1);
        at::Tensor flat = (ids + offset).reshape({-1});
        sums = at::zeros({groups * c, dim}, x.options())
                   .index_add_(0, flat, x.reshape({groups * n, dim}));
        sums = sums.view({groups, c, dim});
        counts = at::bincount(flat, {}, groups * c).view({groups, c}).to(at::kFloat);
    }
    at::Tensor mean = sums / counts.clamp_min(1.0f).unsqueeze(-1);
    // An empty cluster keeps its previous centroid.
    at::Tensor updated = at::where(counts.gt(0).unsqueeze(-1), mean, old.to(at::kFloat));
    return updated.to(at::kBFloat16);
}

// Empty clusters waste codebook entries (common after a warm start: some of the previous
// span's content is gone). Each one takes over the token farthest from its centroid, farthest
// first, ties to the lower token index. Returns whether anything changed.
bool reseed_empty(const at::Tensor& x, const at::Tensor& ids, at::Tensor& cent) {
    const int64_t groups = x.size(0), c = cent.size(1);
    at::Tensor counts =
        at::zeros({groups, c}, ids.options()).scatter_add_(1, ids, at::ones_like(ids));
    at::Tensor empty = counts.eq(0).to(at::kCPU);
    const int64_t max_empty = empty.sum(1).max().item<int64_t>();
    if (max_empty == 0) return false;
    at::Tensor idx = ids.unsqueeze(-1).expand({groups, x.size(1), x.size(2)});
    at::Tensor dist = (x - cent.to(at::kFloat).gather(1, idx)).pow(2).sum(-1);  // [G, N]
    // Stable descending sort: equal distances keep token order.
    at::Tensor far = std::get<1>(dist.to(at::kCPU).sort(/*stable=*/true, 1, /*descending=*/true))
                         .narrow(1, 0, std::min(max_empty, x.size(1)));
    at::Tensor cent_cpu = cent.to(at::kCPU).clone();
    auto empty_a = empty.accessor<bool, 2>();
    auto far_a = far.accessor<int64_t, 2>();
    for (int64_t g = 0; g < groups; ++g) {
        int64_t taken = 0;
        for (int64_t j = 0; j < c && taken < far.size(1); ++j) {
            if (!empty_a[g][j]) continue;
            cent_cpu[g][j] = x[g][far_a[g][taken++]].to(at::kCPU).to(at::kBFloat16);
        }
    }
    cent = cent_cpu.to(cent.device());
    return true;
}

}  // namespace

at::Tensor assign_nearest(const at::Tensor& x, const at::Tensor& centroids) {
    at::Tensor cf = centroids.to(at::kFloat);
    at::Tensor cn = cf.pow(2).sum(-1).unsqueeze(1);  // [G, 1, C]
    at::Tensor ct = cf.transpose(1, 2);              // [G, D, C]
    const int64_t n = x.size(1);
    std::vector<at::Tensor> parts;
    for (int64_t start = 0; start < n; start += kAssignRows) {
        const int64_t len = std::min(kAssignRows, n - start);
        at::Tensor xs = x.narrow(1, start, len).to(at::kFloat);
        // ||x||^2 is constant per row, so ||c||^2 - 2 x.c orders the centroids by distance.
        at::Tensor scores = at::baddbmm(cn, xs, ct, 1.0, -2.0);
        parts.push_back(scores.argmin(-1));
    }
    return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

double kmeans_inertia(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids) {
    at::Tensor idx = ids.to(at::kLong).unsqueeze(-1).expand({x.size(0), x.size(1), x.size(2)});
    at::Tensor picked = centroids.to(at::kFloat).gather(1, idx);
    return (x.to(at::kDouble) - picked.to(at::kDouble)).pow(2).sum().item<double>();
}

KMeansResult kmeans(const at::Tensor& x, const KMeansOptions& options,
                    const at::Tensor& warm_start) {
    QVG_CHECK(x.dim() == 3, "k-means input must be [groups, tokens, dim], got {} dimensions",
              x.dim());
    QVG_CHECK(x.is_floating_point(), "k-means input must be floating point, got {}",
              c10::toString(x.scalar_type()));
    const int64_t groups = x.size(0), n = x.size(1), dim = x.size(2);
    const int64_t c = options.centroids;
    QVG_CHECK(c >= 1 && c <= 256, "k-means centroids must be in 1..256 (uint8 ids), got {}", c);
    QVG_CHECK(n >= 1, "k-means needs at least one token, got an empty span");
    QVG_CHECK(c <= n, "k-means asked for {} centroids but the span has only {} tokens", c, n);
    QVG_CHECK(options.iterations >= 0, "k-means iterations must be >= 0, got {}",
              options.iterations);

    at::Tensor xf = x.to(at::kFloat).contiguous();
    at::Tensor cent;
    if (warm_start.defined()) {
        QVG_CHECK(warm_start.dim() == 3 && warm_start.size(0) == groups &&
                      warm_start.size(1) == c && warm_start.size(2) == dim,
                  "k-means warm start must be [{}, {}, {}], got {}", groups, c, dim,
                  fmt::join(warm_start.sizes(), "x"));
        cent = warm_start.to(xf.device()).to(at::kBFloat16);
    } else {
        cent = random_init(xf, c, options.seed).to(at::kBFloat16);
    }

    KMeansResult result;
    at::Tensor ids;
    for (int it = 0; it < options.iterations; ++it) {
        at::Tensor next = assign_nearest(xf, cent);
        const bool converged = ids.defined() && next.ne(ids).to(at::kFloat).mean().item<double>() <
                                                    options.converged_fraction;
        ids = next;
        cent = update_centroids(xf, ids, cent);
        reseed_empty(xf, ids, cent);
        result.iterations_run = it + 1;
        if (converged) break;
    }
    if (options.final_assign || !ids.defined()) ids = assign_nearest(xf, cent);
    result.ids = ids.to(at::kByte);
    result.centroids = cent;
    return result;
}

}  // namespace qvg::core
