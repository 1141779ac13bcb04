// Bridges qvg::core spans to the fused decode kernel of qvg_kernels.

#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "codec_impl.h"
#include "qvg/core/error.h"
#include "qvg/kernels/qvg_decode_cuda.h"
#include "span_decode.h"

namespace qvg::core::detail {
namespace {

// An INT4 codebook widened to BF16 on the stream (one launch).
at::Tensor widen_int4(const SpanStage& st) {
    return widen_int4_codebook(st, [](const kernels::Int4CodebookParams& p) {
        const cudaError_t err = kernels::widen_int4_codebook(p, at::cuda::getCurrentCUDAStream());
        QVG_CHECK(err == cudaSuccess, "INT4 codebook widening: {}", cudaGetErrorString(err));
    });
}

}  // namespace

bool decode_span_cuda(const EncodedSpan& span, const at::Tensor& out, const RopeAngles* rope,
                      const DecodeLaunch* launch) {
    if (out.scalar_type() != at::kBFloat16 || !out.is_cuda() || out.stride(3) != 1) return false;
    if (!span.quant.codes.is_cuda()) return false;
    kernels::QvgDecodeParams p;
    // The kernel reads BF16 and FP8 codebooks as they are; INT4 ones are widened to BF16 first
    // (one launch per stage, exactly centroids_bf16): C x D values per head, a small fraction of
    // the span. The copies live until the launch is queued; the allocator reuses their memory
    // only for work ordered after it on this stream.
    std::vector<at::Tensor> widened;
    if (!span_decode_params(span, p, widened, widen_int4)) return false;
    if (rope != nullptr) {
        if (!rope->cos.is_cuda() || rope->cos.scalar_type() != at::kFloat ||
            !rope->cos.is_contiguous() || !rope->sin.is_contiguous()) {
            return false;
        }
        p.rope_cos = rope->cos.data_ptr<float>();
        p.rope_sin = rope->sin.data_ptr<float>();
    }
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.out_stride_b = out.stride(0);
    p.out_stride_n = out.stride(1);
    p.out_stride_h = out.stride(2);
    if (launch != nullptr) {
        p.parts_per_thread = launch->parts_per_thread;
        p.streaming_stores = launch->streaming_stores;
        p.interleaved_parts = launch->interleaved_parts;
        p.shared_centroids = launch->shared_centroids;
        p.rows_per_thread = launch->rows_per_thread;
        p.persistent = launch->persistent;
        p.lean_math = launch->lean_math;
        p.blocks_per_sm = launch->blocks_per_sm;
        p.compact_index = launch->compact_index;
        p.pipelined = launch->pipelined;
        p.bulk_stores = launch->bulk_stores;
    }
    const c10::cuda::CUDAGuard guard(out.device());
    const cudaError_t err = kernels::qvg_decode_bf16(p, at::cuda::getCurrentCUDAStream());
    if (err == cudaErrorInvalidValue) {
        (void)cudaGetLastError();
        return false;  // alignment or shape the kernel does not take
    }
    QVG_CHECK(err == cudaSuccess, "QVG decode kernel failed: {}", cudaGetErrorString(err));
    return true;
}

}  // namespace qvg::core::detail

namespace qvg::core {

void write_decode_ceiling(const at::Tensor& out, DecodeWriteCeiling kind) {
    QVG_CHECK(
        out.dim() == 4 && out.is_cuda() && out.scalar_type() == at::kBFloat16 && out.stride(3) == 1,
        "write_decode_ceiling: out must be a [B, N, H, D] BF16 CUDA view");
    kernels::QvgDecodeParams p;
    p.batch = out.size(0);
    p.tokens = out.size(1);
    p.heads = out.size(2);
    p.dim = out.size(3);
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.out_stride_b = out.stride(0);
    p.out_stride_n = out.stride(1);
    p.out_stride_h = out.stride(2);
    const kernels::QvgWriteCeiling k =
        kind == DecodeWriteCeiling::kMemset         ? kernels::QvgWriteCeiling::kMemset
        : kind == DecodeWriteCeiling::kLinearStores ? kernels::QvgWriteCeiling::kLinear
                                                    : kernels::QvgWriteCeiling::kDefaultLayout;
    const c10::cuda::CUDAGuard guard(out.device());
    const cudaError_t err =
        kernels::qvg_decode_write_ceiling(p, k, at::cuda::getCurrentCUDAStream());
    QVG_CHECK(err == cudaSuccess, "write_decode_ceiling: {}", cudaGetErrorString(err));
}

}  // namespace qvg::core
