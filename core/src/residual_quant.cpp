#include "residual_quant.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace qvg::core::detail {

bool residual_quant_setup(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids,
                          const GroupQuantSpec& spec, ResidualQuantResult& out,
                          kernels::ResidualQuantParams& p, std::vector<at::Tensor>& keep) {
    const bool bf16_in = x.scalar_type() == at::kBFloat16;
    if ((x.scalar_type() != at::kFloat && !bf16_in) || !x.is_contiguous() || x.dim() != 3) {
        return false;
    }
    const int64_t groups = x.size(0), n = x.size(1), dim = x.size(2);
    if (spec.group <= 0 || dim % spec.group != 0 || dim * spec.bits % 8 != 0) return false;
    const auto u8 = x.options().dtype(at::kByte);
    out.quant.codes = at::empty({groups, n, dim * spec.bits / 8}, u8);
    out.quant.scales = at::empty({groups, n, dim / spec.group}, u8);
    out.quant.zeros = spec.asymmetric ? at::empty({groups, n, dim / spec.group}, u8) : at::Tensor();
    out.sums = at::empty({3, groups, n}, x.options().dtype(at::kFloat));
    p = kernels::ResidualQuantParams{};
    if (ids.defined()) {
        p.ids = keep.emplace_back(ids.to(at::kByte).contiguous()).data_ptr<uint8_t>();
        const at::Tensor& cent = keep.emplace_back(centroids.to(at::kBFloat16).contiguous());
        p.centroids = reinterpret_cast<const uint16_t*>(cent.data_ptr<at::BFloat16>());
        p.num_centroids = cent.size(1);
    }
    if (bf16_in) {
        p.x_bf16 = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
    } else {
        p.x = x.data_ptr<float>();
    }
    p.groups = groups;
    p.tokens = n;
    p.dim = dim;
    p.bits = spec.bits;
    p.group = spec.group;
    p.asymmetric = spec.asymmetric;
    p.clip_search = spec.clip_search;
    p.codes = out.quant.codes.data_ptr<uint8_t>();
    p.scales = out.quant.scales.data_ptr<uint8_t>();
    p.zeros = spec.asymmetric ? out.quant.zeros.data_ptr<uint8_t>() : nullptr;
    float* sums = out.sums.data_ptr<float>();
    p.residual_sq = sums;
    p.error_sq = sums + groups * n;
    p.input_sq = sums + 2 * groups * n;
    return true;
}

bool residual_quant_host(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids,
                         const GroupQuantSpec& spec, ResidualQuantResult& out) {
    if (!x.device().is_cpu() || (ids.defined() && !ids.device().is_cpu())) return false;
    kernels::ResidualQuantParams p;
    std::vector<at::Tensor> keep;
    if (!residual_quant_setup(x, ids, centroids, spec, out, p, keep)) return false;
    if (!kernels::residual_quant_host_takes(p)) return false;
    // Rows on the intra-op threads, each task at least ~16K values (a range search costs about
    // 13 quantizations of each).
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(p.dim, 1));
    at::parallel_for(0, p.groups * p.tokens, grain, [&](int64_t first, int64_t last) {
        kernels::residual_quant_host(p, first, last);
    });
    return true;
}

}  // namespace qvg::core::detail
