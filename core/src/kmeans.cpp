#include "qvg/core/kmeans.h"

#include <algorithm>
#include <atomic>
#include <tuple>

#include <ATen/ATen.h>

#include "cuda_bridge.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/rng.h"

namespace qvg::core {
namespace {

// Rows of x per distance block of the unfused path: bounds the [G, rows, C] score matrix
// (~64 MiB at G=12, C=256).
constexpr int64_t kAssignRows = 8192;

std::atomic<bool> legacy_kernels{false};

}  // namespace

void set_kmeans_legacy_kernels(bool legacy) { legacy_kernels.store(legacy); }
bool kmeans_legacy_kernels() { return legacy_kernels.load(); }

at::Tensor kmeans_init(const at::Tensor& x, int64_t centroids, uint64_t seed, int64_t seed_period) {
#ifdef QVG_HAVE_CUDA
    if (x.is_cuda() && x.scalar_type() == at::kBFloat16 && x.is_contiguous()) {
        // The same draws on the device: no host loop, no upload that waits for the stream.
        at::Tensor out = detail::kmeans_init_cuda(x, centroids, seed, seed_period);
        if (out.defined()) return out;
    }
#endif
    const int64_t groups = x.size(0);
    const int64_t n = x.size(1);
    std::vector<int64_t> index;
    index.reserve(static_cast<size_t>(groups * centroids));
    for (int64_t g = 0; g < groups; ++g) {
        Rng rng(Rng::mix(seed, static_cast<uint64_t>(seed_period > 0 ? g % seed_period : g)));
        auto picks = rng.distinct(n, centroids);
        index.insert(index.end(), picks.begin(), picks.end());
    }
    at::Tensor idx = at::tensor(index, at::kLong).view({groups, centroids}).to(x.device());
    return x.gather(1, idx.unsqueeze(-1).expand({groups, centroids, x.size(2)})).to(at::kBFloat16);
}

void KMeansStop::observe(const at::Tensor& previous, const at::Tensor& next, int it) {
    pending_ = at::Tensor();
    if (!previous.defined() || it + 1 >= options_.iterations) return;
    const int64_t groups = next.size(0), per = options_.groups_per_item;
    const int64_t per_item = per > 0 && groups % per == 0 ? per : groups;
    const at::Tensor changed = next.ne(previous).to(at::kFloat).view({groups / per_item, -1});
    pending_ = changed.mean(1).lt(options_.converged_fraction).repeat_interleave(per_item);
}

at::Tensor KMeansStop::keep(const at::Tensor& before, const at::Tensor& updated) const {
    return done_.defined() ? at::where(done_.view({-1, 1, 1}), before, updated) : updated;
}

bool KMeansStop::finished() {
    if (!pending_.defined()) return false;
    done_ = done_.defined() ? done_.logical_or(pending_) : pending_;
    return done_.all().item<bool>();
}

at::Tensor kmeans_update(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& old) {
    const int64_t groups = x.size(0), n = x.size(1), dim = x.size(2), c = old.size(1);
#ifdef QVG_HAVE_CUDA
    if (x.is_cuda()) {
        // The kernel reads BF16: exact for k-means inputs, which are BF16 values (kmeans.h).
        at::Tensor out = detail::kmeans_update_cuda(x.to(at::kBFloat16).contiguous(), ids, old);
        if (out.defined()) return out;
    }
#endif
    const at::Tensor xf = x.to(at::kFloat);
    // Sequential index_add in token order: the order the CUDA kernel reproduces.
    at::Tensor offset = at::arange(groups, ids.options()).mul_(c).unsqueeze(1);
    at::Tensor flat = (ids + offset).reshape({-1});
    at::Tensor sums = at::zeros({groups * c, dim}, xf.options())
                          .index_add_(0, flat, xf.reshape({groups * n, dim}))
                          .view({groups, c, dim});
    at::Tensor counts = at::bincount(flat, {}, groups * c).view({groups, c}).to(at::kFloat);
    at::Tensor mean = sums / counts.clamp_min(1.0f).unsqueeze(-1);
    // An empty cluster keeps its previous centroid.
    at::Tensor updated = at::where(counts.gt(0).unsqueeze(-1), mean, old.to(at::kFloat));
    return updated.to(at::kBFloat16);
}

// Empty clusters waste codebook entries (common after a warm start: some of the previous
// span's content is gone). The k-th empty cluster of a group takes over the k-th farthest token
// from its centroid (stable order: ties go to the lower token index). Device-side, no sync.
// dist: [G, N] squared distance of every token to its assigned centroid.
at::Tensor kmeans_reseed_empty(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& dist,
                               const at::Tensor& cent) {
    const int64_t groups = x.size(0), c = cent.size(1), dim = x.size(2);
    at::Tensor counts =
        at::zeros({groups, c}, ids.options()).scatter_add_(1, ids, at::ones_like(ids));
    at::Tensor empty = counts.eq(0);  // [G, C]
    // Usually nothing is empty: one small check saves the sort over every token.
    if (!empty.any().item<bool>()) return cent;
    at::Tensor rank = (empty.to(at::kLong).cumsum(1) - 1).clamp_min(0);  // k of the k-th empty
    const int64_t take = std::min(c, x.size(1));
    at::Tensor far =
        std::get<1>(dist.sort(/*stable=*/true, 1, /*descending=*/true)).narrow(1, 0, take);
    at::Tensor token = far.gather(1, rank.clamp_max(take - 1));  // [G, C]
    at::Tensor rows = x.gather(1, token.unsqueeze(-1).expand({groups, c, dim})).to(at::kBFloat16);
    return at::where(empty.unsqueeze(-1), rows, cent);
}

namespace {

// The token matrix in the forms the assignment and the update need, made once per k-means call.
// On CUDA with a head dimension the fused kernel takes (64, 128, 256), the tokens stay in BF16
// (exact: k-means inputs are BF16 values) and nothing is widened to fp32.
struct Points {
    at::Tensor xb;     // [G, N, D] bf16, CUDA only
    at::Tensor xf;     // [G, N, D] fp32, unless fused
    at::Tensor norm2;  // [G, N] ||x||^2, unless fused
    bool fused = false;
    explicit Points(const at::Tensor& x) {
        const int64_t d = x.size(2);
        if (x.is_cuda()) {
            xb = x.to(at::kBFloat16).contiguous();
            fused = d == 64 || d == 128 || d == 256;
            if (fused) return;
        }
        xf = x.to(at::kFloat).contiguous();
        norm2 = xf.pow(2).sum(-1);
    }
    // The tokens to gather rows from and to average (values identical in either form).
    const at::Tensor& rows() const { return xb.defined() ? xb : xf; }
};

std::pair<at::Tensor, at::Tensor> assign(const Points& p, const at::Tensor& centroids) {
#ifdef QVG_HAVE_CUDA
    if (p.fused) {
        auto [ids, dist] = detail::assign_cuda(p.xb, centroids);
        if (ids.defined()) return {ids, dist};
    }
#endif
    at::Tensor cf = centroids.to(at::kFloat);
    at::Tensor cn = cf.pow(2).sum(-1).unsqueeze(1);  // [G, 1, C]
    const int64_t n = p.xf.size(1);
    std::vector<at::Tensor> ids, dists;
    for (int64_t start = 0; start < n; start += kAssignRows) {
        const int64_t len = std::min(kAssignRows, n - start);
        // ||x||^2 is constant per row, so ||c||^2 - 2 x.c orders the centroids by distance.
        at::Tensor scores =
            at::baddbmm(cn, p.xf.narrow(1, start, len), cf.transpose(1, 2), 1.0, -2.0);
        auto [best, index] = scores.min(-1);
        ids.push_back(index);
        dists.push_back((best + p.norm2.narrow(1, start, len)).clamp_min(0.0f));
    }
    if (ids.size() == 1) return {ids[0], dists[0]};
    return {at::cat(ids, 1), at::cat(dists, 1)};
}

}  // namespace

std::pair<at::Tensor, at::Tensor> assign_nearest_with_distance(const at::Tensor& x,
                                                               const at::Tensor& centroids) {
    return assign(Points(x), centroids);
}

at::Tensor assign_nearest(const at::Tensor& x, const at::Tensor& centroids) {
    return assign_nearest_with_distance(x, centroids).first;
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

    if (warm_start.defined()) {
        QVG_CHECK(warm_start.dim() == 3 && warm_start.size(0) == groups &&
                      warm_start.size(1) == c && warm_start.size(2) == dim,
                  "k-means warm start must be [{}, {}, {}], got {}", groups, c, dim,
                  fmt::join(warm_start.sizes(), "x"));
    }
    const Points points(x);
#ifdef QVG_HAVE_CUDA
    if (points.fused) {
        KMeansResult result;
        if (detail::kmeans_cuda(points.xb, options, warm_start, result)) return result;
    }
#endif
    const at::Tensor& rows = points.rows();
    at::Tensor cent = kmeans_init(rows, c, options.seed, options.groups_per_item);
    mark_phase("k-means init (draw + copy rows)");
    at::Tensor first_ids, first_dist;  // an assignment to `cent` already made, if any
    if (warm_start.defined()) {
        // The previous span's codebook usually fits the new tokens better than random tokens,
        // but not always (content that left the view). Each group starts from whichever of the
        // two fits it better; both assignments are needed anyway, so this costs one assignment.
        at::Tensor warm = warm_start.to(rows.device()).to(at::kBFloat16);
        auto [ids_w, dist_w] = assign(points, warm);
        auto [ids_c, dist_c] = assign(points, cent);
        at::Tensor pick = dist_w.sum(1).le(dist_c.sum(1));  // [G]
        cent = at::where(pick.view({groups, 1, 1}), warm, cent);
        first_ids = at::where(pick.view({groups, 1}), ids_w, ids_c);
        first_dist = at::where(pick.view({groups, 1}), dist_w, dist_c);
        mark_phase("k-means warm start (2 assignments, pick)");
    }

    KMeansResult result;
    at::Tensor ids;
    KMeansStop stop(options);
    for (int it = 0; it < options.iterations; ++it) {
        at::Tensor next, dist;
        if (it == 0 && first_ids.defined()) {
            next = first_ids;
            dist = first_dist;
        } else {
            std::tie(next, dist) = assign(points, cent);
        }
        stop.observe(ids, next, it);
        ids = next;
        cent =
            stop.keep(cent, kmeans_reseed_empty(rows, ids, dist, kmeans_update(rows, ids, cent)));
        result.iterations_run = it + 1;
        mark_phase(fmt::format("k-means iteration {} (assign, update, reseed)", it + 1));
        if (stop.finished()) break;
    }
    if (options.final_assign || !ids.defined()) {
        ids = assign(points, cent).first;
        mark_phase("k-means final assign");
    }
    result.ids = ids.to(at::kByte);
    result.centroids = cent;
    return result;
}

}  // namespace qvg::core
