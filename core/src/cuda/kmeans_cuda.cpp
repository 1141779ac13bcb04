// kmeans() on the GPU, start to finish in the encode kernels of qvg_kernels.
//
// The generic path (kmeans.cpp) spends as much time between kernels as in them: a host-side draw
// uploaded with a synchronising copy, a gather, id casts, and per iteration a dozen small ATen
// launches plus a host round trip to ask whether a cluster went empty. Here one cold k-means of
// 2 iterations is 8 launches - init, (assign, update, reseed) x 2, final assign - into 4 buffers
// allocated once, and nothing waits for the device. The centroids are updated in place.

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <fmt/format.h>

#include "cuda_bridge.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/kernels/qvg_encode_cuda.h"

namespace qvg::core::detail {
namespace {

const uint16_t* bf16_in(const at::Tensor& t) {
    return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>());
}
uint16_t* bf16_out(const at::Tensor& t) {
    return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>());
}

void check(cudaError_t err, const char* what) {
    QVG_CHECK(err == cudaSuccess, "{} kernel failed: {}", what, cudaGetErrorString(err));
}

// The span's tokens and the reused buffers of one k-means call.
struct Buffers {
    at::Tensor x;       // bf16 [G, N, D]
    at::Tensor ids;     // uint8 [G, N]
    at::Tensor dist;    // fp32 [G, N]
    at::Tensor counts;  // int32 [G, C]
    int64_t groups = 0, tokens = 0, dim = 0;
    cudaStream_t stream = nullptr;
};

void assign(const Buffers& b, const at::Tensor& cent, const at::Tensor& ids, float* dist) {
    kernels::AssignParams p;
    p.x = bf16_in(b.x);
    p.centroids = bf16_in(cent);
    p.ids_u8 = ids.data_ptr<uint8_t>();
    p.dist = dist;
    p.groups = b.groups;
    p.tokens = b.tokens;
    p.num_centroids = cent.size(1);
    p.dim = b.dim;
    p.legacy = kmeans_legacy_kernels();
    check(kernels::kmeans_assign(p, b.stream), "k-means assignment");
}

// Update in place, then reseed the clusters it left empty.
void update_and_reseed(const Buffers& b, const at::Tensor& cent) {
    kernels::KMeansUpdateParams u;
    u.x = bf16_in(b.x);
    u.ids = b.ids.data_ptr<uint8_t>();
    u.old = bf16_in(cent);
    u.out = bf16_out(cent);
    u.counts = b.counts.data_ptr<int32_t>();
    u.groups = b.groups;
    u.tokens = b.tokens;
    u.centroids = cent.size(1);
    u.dim = b.dim;
    u.legacy = kmeans_legacy_kernels();
    check(kernels::kmeans_update(u, b.stream), "k-means update");
    kernels::KMeansReseedParams r;
    r.x = bf16_in(b.x);
    r.counts = b.counts.data_ptr<int32_t>();
    r.dist = b.dist.data_ptr<float>();
    r.centroids = bf16_out(cent);
    r.groups = b.groups;
    r.tokens = b.tokens;
    r.num_centroids = cent.size(1);
    r.dim = b.dim;
    check(kernels::kmeans_reseed(r, b.stream), "k-means reseed");
}

}  // namespace

bool kmeans_cuda(const at::Tensor& xb, const KMeansOptions& options, const at::Tensor& warm_start,
                 KMeansResult& out) {
    const int64_t c = options.centroids;
    if (!xb.is_cuda() || xb.scalar_type() != at::kBFloat16 || !xb.is_contiguous() ||
        xb.dim() != 3 || c > 256 || (xb.size(2) != 64 && xb.size(2) != 128 && xb.size(2) != 256) ||
        xb.size(1) > 0x7fffffffLL) {
        return false;
    }
    const c10::cuda::CUDAGuard guard(xb.device());
    Buffers b;
    b.x = xb;
    b.groups = xb.size(0);
    b.tokens = xb.size(1);
    b.dim = xb.size(2);
    b.stream = at::cuda::getCurrentCUDAStream();
    b.ids = at::empty({b.groups, b.tokens}, xb.options().dtype(at::kByte));
    b.dist = at::empty({b.groups, b.tokens}, xb.options().dtype(at::kFloat));
    b.counts = at::empty({b.groups, c}, xb.options().dtype(at::kInt));

    at::Tensor cent = kmeans_init_cuda(xb, c, options.seed, options.groups_per_item);
    if (!cent.defined()) return false;
    mark_phase("k-means init (draw + copy rows)");
    bool first_done = false;  // ids and dist already hold an assignment to cent
    if (warm_start.defined()) {
        // As the generic path: each group starts from whichever of the previous codebook and the
        // random tokens fits it better (both assignments are needed anyway).
        const at::Tensor warm = warm_start.to(xb.device()).to(at::kBFloat16).contiguous();
        at::Tensor ids_w = at::empty_like(b.ids), dist_w = at::empty_like(b.dist);
        assign(b, warm, ids_w, dist_w.data_ptr<float>());
        assign(b, cent, b.ids, b.dist.data_ptr<float>());
        // Summed in double: the reduction's order depends on the number of groups, and a
        // batch row must pick as it would alone.
        const at::Tensor pick =
            dist_w.to(at::kDouble).sum(1).le(b.dist.to(at::kDouble).sum(1));  // [G]
        cent = at::where(pick.view({b.groups, 1, 1}), warm, cent).contiguous();
        b.ids.copy_(at::where(pick.view({b.groups, 1}), ids_w, b.ids));
        b.dist.copy_(at::where(pick.view({b.groups, 1}), dist_w, b.dist));
        first_done = true;
        mark_phase("k-means warm start (2 assignments, pick)");
    }
    at::Tensor previous;  // the ids before this iteration's, only to test convergence
    KMeansStop stop(options);
    for (int it = 0; it < options.iterations; ++it) {
        if (it > 0 || !first_done) assign(b, cent, b.ids, b.dist.data_ptr<float>());
        // The generic path's convergence test (never on the last iteration): a host round trip,
        // so only runs of 3 or more iterations pay for it.
        stop.observe(previous, b.ids, it);
        if (it + 2 < options.iterations) previous = b.ids.clone();
        const at::Tensor before = stop.holding() ? cent.clone() : at::Tensor();
        update_and_reseed(b, cent);  // in place
        if (stop.holding()) cent.copy_(stop.keep(before, cent));
        out.iterations_run = it + 1;
        mark_phase(fmt::format("k-means iteration {} (assign, update, reseed)", it + 1));
        if (stop.finished()) break;
    }
    if (options.final_assign || options.iterations == 0) {
        assign(b, cent, b.ids, nullptr);
        mark_phase("k-means final assign");
    }
    out.ids = b.ids;
    out.centroids = cent;
    return true;
}

}  // namespace qvg::core::detail
