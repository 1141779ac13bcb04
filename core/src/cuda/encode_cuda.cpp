// Bridges the codec's encode to the k-means update and fused quantization kernels.

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda_bridge.h"
#include "qvg/core/error.h"
#include "qvg/kernels/qvg_encode_cuda.h"

namespace qvg::core::detail {
namespace {

void check(cudaError_t err, const char* what) {
    QVG_CHECK(err == cudaSuccess, "{} kernel failed: {}", what, cudaGetErrorString(err));
}

}  // namespace

at::Tensor kmeans_update_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& old) {
    const int64_t groups = x.size(0), n = x.size(1), dim = x.size(2), c = old.size(1);
    if (x.scalar_type() != at::kBFloat16 || !x.is_contiguous() || c > 256 ||
        (dim != 64 && dim != 128 && dim != 256)) {
        return {};
    }
    const c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor ids8 = ids.to(at::kByte).contiguous();  // < 256 clusters
    const at::Tensor old_bf16 = old.to(at::kBFloat16).contiguous();
    at::Tensor out = at::empty_like(old_bf16);
    kernels::KMeansUpdateParams p;
    p.x = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
    p.ids = ids8.data_ptr<uint8_t>();
    p.old = reinterpret_cast<const uint16_t*>(old_bf16.data_ptr<at::BFloat16>());
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.groups = groups;
    p.tokens = n;
    p.centroids = c;
    p.dim = dim;
    p.legacy = kmeans_legacy_kernels();
    check(kernels::kmeans_update(p, at::cuda::getCurrentCUDAStream()), "k-means update");
    return out;
}

at::Tensor kmeans_init_cuda(const at::Tensor& xb, int64_t centroids, uint64_t seed,
                            int64_t seed_period) {
    if (!xb.is_cuda() || xb.scalar_type() != at::kBFloat16 || !xb.is_contiguous() ||
        xb.dim() != 3 || xb.size(2) % 8 != 0) {
        return {};
    }
    const c10::cuda::CUDAGuard guard(xb.device());
    at::Tensor out = at::empty({xb.size(0), centroids, xb.size(2)}, xb.options());
    kernels::KMeansInitParams p;
    p.x = reinterpret_cast<const uint16_t*>(xb.data_ptr<at::BFloat16>());
    p.centroids = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.groups = xb.size(0);
    p.tokens = xb.size(1);
    p.num_centroids = centroids;
    p.dim = xb.size(2);
    p.seed = seed;
    p.seed_period = seed_period;
    p.legacy = kmeans_legacy_kernels();
    const cudaError_t err = kernels::kmeans_init(p, at::cuda::getCurrentCUDAStream());
    if (err == cudaErrorInvalidValue) {
        (void)cudaGetLastError();
        return {};
    }
    check(err, "k-means initialisation");
    return out;
}

std::pair<at::Tensor, at::Tensor> assign_cuda(const at::Tensor& x, const at::Tensor& centroids) {
    const int64_t groups = x.size(0), n = x.size(1), dim = x.size(2), c = centroids.size(1);
    if (x.scalar_type() != at::kBFloat16 || (dim != 64 && dim != 128 && dim != 256) || c > 256)
        return {};
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor xc = x.contiguous();
    at::Tensor cc = centroids.to(at::kBFloat16).contiguous();
    at::Tensor ids = at::empty({groups, n}, x.options().dtype(at::kLong));
    at::Tensor dist = at::empty({groups, n}, x.options().dtype(at::kFloat));
    kernels::AssignParams p;
    p.x = reinterpret_cast<const uint16_t*>(xc.data_ptr<at::BFloat16>());
    p.centroids = reinterpret_cast<const uint16_t*>(cc.data_ptr<at::BFloat16>());
    p.ids = ids.data_ptr<int64_t>();
    p.dist = dist.data_ptr<float>();
    p.groups = groups;
    p.tokens = n;
    p.num_centroids = c;
    p.dim = dim;
    p.legacy = kmeans_legacy_kernels();
    check(kernels::kmeans_assign(p, at::cuda::getCurrentCUDAStream()), "k-means assignment");
    return {ids, dist};
}

bool residual_quant_cuda(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids,
                         const GroupQuantSpec& spec, ResidualQuantResult& out) {
    if (!x.is_cuda() || x.dim() != 3) return false;
    const int64_t dim = x.size(2);
    if (dim % 8 != 0 || dim / 8 > 32 || 32 % (dim / 8) != 0 || spec.group % 8 != 0) return false;
    const c10::cuda::CUDAGuard guard(x.device());
    kernels::ResidualQuantParams p;
    std::vector<at::Tensor> keep;
    if (!residual_quant_setup(x, ids, centroids, spec, out, p, keep)) return false;
    const cudaError_t err = kernels::residual_quant(p, at::cuda::getCurrentCUDAStream());
    if (err == cudaErrorInvalidValue) {
        (void)cudaGetLastError();
        return false;
    }
    check(err, "residual quantization");
    return true;
}

}  // namespace qvg::core::detail
