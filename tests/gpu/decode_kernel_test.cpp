// The fused decode kernel against its CPU reference and against the codec, bit for bit.

#include <functional>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>

#include "qvg/core/codec.h"
#include "qvg/core/synthetic.h"
#include "qvg/kernels/qvg_decode.h"
#include "qvg/kernels/qvg_decode_cuda.h"

namespace qvg {
namespace {

struct Case {
    int bits, group, stages;
    int64_t dim, tokens;
    bool asym;
    bool fp8 = false;  // FP8-E4M3 codebooks, read by the kernel as they are
};

std::string name(const Case& c) {
    return "INT" + std::to_string(c.bits) + "_G" + std::to_string(c.group) + "_S" +
           std::to_string(c.stages) + "_D" + std::to_string(c.dim) + "_N" +
           std::to_string(c.tokens) + (c.asym ? "_asym" : "") + (c.fp8 ? "_fp8c" : "");
}

// Random but valid encoded data: any code byte, any finite scale byte, ids below C.
struct Data {
    at::Tensor codes, scales, zeros;
    std::vector<at::Tensor> ids, centroids;
};

Data random_data(const Case& c, int64_t b, int64_t h, int64_t centroids) {
    Data d;
    const int64_t rows = b * h * c.tokens;
    d.codes = at::randint(0, 256, {b, h, c.tokens, c.dim * c.bits / 8}).to(at::kByte);
    // Scale bytes: every finite E4M3 pattern (not 0x7f / 0xff).
    d.scales = at::randint(0, 0x7f, {b, h, c.tokens, c.dim / c.group}).to(at::kByte);
    d.zeros = at::randint(0, 0x7f, {b, h, c.tokens, c.dim / c.group})
                  .to(at::kByte)
                  .bitwise_or(
                      at::randint(0, 2, {b, h, c.tokens, c.dim / c.group}).to(at::kByte).mul(128));
    for (int s = 0; s < c.stages; ++s) {
        d.ids.push_back(at::randint(0, centroids, {b, h, c.tokens}).to(at::kByte));
        d.centroids.push_back(
            c.fp8 ? at::randint(0, 0x7f, {b, h, centroids, c.dim})  // finite E4M3, both signs
                        .to(at::kByte)
                        .bitwise_or(
                            at::randint(0, 2, {b, h, centroids, c.dim}).to(at::kByte).mul(128))
                  : at::randn({b, h, centroids, c.dim}).to(at::kBFloat16));
    }
    (void)rows;
    return d;
}

kernels::QvgDecodeParams params(const Case& c, const Data& d, int64_t b, int64_t h,
                                int64_t centroids, at::Tensor& out) {
    kernels::QvgDecodeParams p;
    p.codes = d.codes.data_ptr<uint8_t>();
    p.scales = d.scales.data_ptr<uint8_t>();
    p.zeros = c.asym ? d.zeros.data_ptr<uint8_t>() : nullptr;
    p.num_stages = c.stages;
    for (int s = 0; s < c.stages; ++s) {
        p.ids[s] = d.ids[static_cast<size_t>(s)].data_ptr<uint8_t>();
        const at::Tensor& cent = d.centroids[static_cast<size_t>(s)];
        if (c.fp8) {
            p.centroids_fp8[s] = cent.data_ptr<uint8_t>();
        } else {
            p.centroids[s] = reinterpret_cast<const uint16_t*>(cent.data_ptr<at::BFloat16>());
        }
    }
    p.batch = b;
    p.heads = h;
    p.tokens = c.tokens;
    p.dim = c.dim;
    p.num_centroids = centroids;
    p.bits = c.bits;
    p.group = c.group;
    p.asymmetric = c.asym;
    p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    p.out_stride_b = out.stride(0);
    p.out_stride_n = out.stride(1);
    p.out_stride_h = out.stride(2);
    return p;
}

// Every launch shape of the kernel (parts 0 = the default); results must not depend on it.
struct Launch {
    int parts;
    bool streaming, interleaved, shared;
    int rows = 0;  // > 0: the flat grid, rows per thread
    bool persistent = false;
    bool lean = false;
    int pipelined = 0;
    bool bulk = false;
    int blocks_per_sm = 0;
    bool compact = false;
};

std::vector<Launch> all_launches(int64_t dim) {
    std::vector<Launch> out;
    for (int parts : {0, 1, 2, 4})
        for (bool streaming : {false, true})
            for (bool interleaved : {false, true})
                for (bool shared : {false, true}) {
                    if (parts > 0 && (dim / 8) % parts != 0) continue;
                    out.push_back({parts, streaming, interleaved, shared});
                }
    // The flat grid (1, 2, 4 rows per thread; covering or persistent).
    for (int parts : {0, 4})
        for (bool streaming : {false, true})
            for (bool interleaved : {false, true})
                for (int rows : {1, 2, 4})
                    for (bool persistent : {false, true}) {
                        if (parts > 0 && (dim / 8) % parts != 0) continue;
                        out.push_back({parts, streaming, interleaved, false, rows, persistent});
                    }
    // Fewer conversion instructions (per-head grid with 2 or 4 parts and streaming stores; the
    // other shapes ignore it), pipelined rows and bulk stores (with and without evict-first).
    for (int parts : {0, 1, 2, 4})
        for (bool interleaved : {false, true}) {
            if (parts > 0 && (dim / 8) % parts != 0) continue;
            out.push_back({parts, true, interleaved, false, 0, false, true});
        }
    // Registers capped for 6 or 8 resident blocks (4 parts, streaming stores).
    for (int parts : {0, 4})
        for (int blocks : {6, 8}) {
            if (parts > 0 && (dim / 8) % parts != 0) continue;
            out.push_back({parts, true, true, false, 0, false, false, 0, false, blocks});
        }
    // 32-bit offsets with the layout fixed at compile time (dim 128 and 256, no RoPE).
    out.push_back({0, true, true, false, 0, false, false, 0, false, 0, true});
    for (bool lean : {false, true}) {
        for (int depth : {1, 2}) out.push_back({0, true, true, false, 0, false, lean, depth});
        for (bool streaming : {false, true})
            out.push_back({0, streaming, false, false, 0, false, lean, false, true});
    }
    return out;
}

void apply(const Launch& l, kernels::QvgDecodeParams& p) {
    p.parts_per_thread = l.parts;
    p.streaming_stores = l.streaming;
    p.interleaved_parts = l.interleaved;
    p.shared_centroids = l.shared;
    p.rows_per_thread = l.rows;
    p.persistent = l.persistent;
    p.lean_math = l.lean;
    p.pipelined = l.pipelined;
    p.bulk_stores = l.bulk;
    p.blocks_per_sm = l.blocks_per_sm;
    p.compact_index = l.compact;
}

std::string describe(const Launch& l) {
    return "parts " + std::to_string(l.parts) + (l.streaming ? " streaming" : "") +
           (l.interleaved ? " interleaved" : "") + (l.shared ? " shared" : "") +
           (l.rows > 0 ? " flat rows " + std::to_string(l.rows) : "") +
           (l.persistent ? " persistent" : "") + (l.lean ? " lean" : "") +
           (l.pipelined > 0 ? " pipelined " + std::to_string(l.pipelined) : "") +
           (l.bulk ? " bulk" : "") +
           (l.blocks_per_sm > 0 ? " blocks/SM " + std::to_string(l.blocks_per_sm) : "") +
           (l.compact ? " compact" : "");
}

Data to_cuda(const Data& d) {
    Data g;
    g.codes = d.codes.cuda();
    g.scales = d.scales.cuda();
    g.zeros = d.zeros.cuda();
    for (const auto& t : d.ids) g.ids.push_back(t.cuda());
    for (const auto& t : d.centroids) g.centroids.push_back(t.cuda());
    return g;
}

TEST(DecodeKernel, MatchesTheCpuReferenceBitForBitOverSweptShapes) {
    std::vector<Case> cases;
    for (int bits : {2, 4})
        for (int group : {16, 64, 128})
            for (int stages : {0, 1, 2, 4})
                for (int64_t dim : {128, 256})
                    for (int64_t tokens : {1, 17, 37, 1031})
                        for (bool asym : {false, true})
                            cases.push_back({bits, group, stages, dim, tokens, asym});
    for (int bits : {2, 4})
        for (int stages : {1, 2})
            for (int64_t dim : {128, 256})
                for (int64_t tokens : {17, 1031})
                    for (bool asym : {false, true})
                        cases.push_back({bits, 64, stages, dim, tokens, asym, true});
    const int64_t b = 2, h = 3, centroids = 256;
    for (const Case& c : cases) {
        at::manual_seed(
            static_cast<uint64_t>(c.tokens * 131 + c.dim + c.bits * 7 + c.group + c.stages));
        Data cpu = random_data(c, b, h, c.stages > 0 ? centroids : 1);
        Data gpu = to_cuda(cpu);
        // Model layout [B, N, H, D] inside a larger history buffer (offset 5 tokens).
        at::Tensor ref_buf = at::zeros({b, c.tokens + 9, h, c.dim}, at::kBFloat16);
        at::Tensor ref_out = ref_buf.narrow(1, 5, c.tokens);
        at::Tensor gpu_buf = at::zeros({b, c.tokens + 9, h, c.dim},
                                       at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
        at::Tensor gpu_out = gpu_buf.narrow(1, 5, c.tokens);
        auto pr = params(c, cpu, b, h, c.stages > 0 ? centroids : 1, ref_out);
        kernels::qvg_decode_reference(pr);
        // Every thread layout of the kernel gives the same bits (and leaves the rest alone).
        for (const Launch& l : all_launches(c.dim)) {
            gpu_buf.zero_();
            auto pg = params(c, gpu, b, h, c.stages > 0 ? centroids : 1, gpu_out);
            apply(l, pg);
            ASSERT_EQ(kernels::qvg_decode_bf16(pg, at::cuda::getCurrentCUDAStream()), cudaSuccess)
                << name(c) << " " << describe(l);
            at::Tensor got = gpu_buf.cpu();
            const int64_t bad =
                got.view(at::kShort).ne(ref_buf.view(at::kShort)).sum().item<int64_t>();
            ASSERT_EQ(bad, 0) << name(c) << " " << describe(l);
        }
    }
}

// INT4 codebooks widened on the device: the reference's bits, for any code, scale and zero
// bytes (finite E4M3 patterns of both signs).
TEST(DecodeKernel, Int4CodebookWideningMatchesTheReference) {
    at::manual_seed(12);
    for (int64_t dim : {64, 128, 256}) {
        const int64_t rows = 3 * 37;
        const at::Tensor codes = at::randint(0, 256, {rows, dim / 2}).to(at::kByte);
        auto fp8 = [&] {
            return at::randint(0, 0x7f, {rows})
                .to(at::kByte)
                .bitwise_or(at::randint(0, 2, {rows}).to(at::kByte).mul(128));
        };
        const at::Tensor scales = fp8(), zeros = fp8();
        auto run = [&](bool cuda) {
            const at::Device dev = cuda ? at::kCUDA : at::kCPU;
            const at::Tensor c = codes.to(dev), s = scales.to(dev), z = zeros.to(dev);
            at::Tensor out =
                at::empty({rows, dim}, at::TensorOptions().dtype(at::kBFloat16).device(dev));
            kernels::Int4CodebookParams p;
            p.codes = c.data_ptr<uint8_t>();
            p.scales = s.data_ptr<uint8_t>();
            p.zeros = z.data_ptr<uint8_t>();
            p.out = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
            p.rows = rows;
            p.dim = dim;
            if (cuda) {
                EXPECT_EQ(kernels::widen_int4_codebook(p, at::cuda::getCurrentCUDAStream()),
                          cudaSuccess);
            } else {
                kernels::widen_int4_codebook_reference(p);
            }
            return out.cpu().view(at::kShort);
        };
        EXPECT_TRUE(at::equal(run(false), run(true))) << "D" << dim;
    }
}

TEST(DecodeKernel, CodecDecodeIntoOnCudaEqualsTheCpuCodec) {
    for (int stages : {0, 1, 3}) {
        for (int bits : {16, 8, 4}) {  // FP8 codebooks read as they are, INT4 ones widened
            if (bits != 16 && stages == 0) continue;
            core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
            cfg.stages = stages;
            cfg.centroids = 64;
            cfg.codebook_bits = bits;
            auto codec = core::Codec::create(cfg);
            core::SyntheticTokens s;
            s.frames = 2;
            at::Tensor x = core::synthetic_tokens(s);  // [1, 2, 3120, 128]
            core::EncodedSpan span = codec->encode(x);
            at::Tensor expect = codec->decode(span).transpose(1, 2).contiguous();
            core::EncodedSpan g = span;
            g.quant.codes = span.quant.codes.cuda();
            g.quant.scales = span.quant.scales.cuda();
            for (auto& st : g.stages) {
                st.ids = st.ids.cuda();
                st.centroids = st.centroids.cuda();
                if (st.centroid_scales.defined()) {  // INT4 codebooks
                    st.centroid_scales = st.centroid_scales.cuda();
                    st.centroid_zeros = st.centroid_zeros.cuda();
                }
            }
            at::Tensor out = at::empty({1, x.size(2), 2, 128},
                                       at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
            codec->decode_into(g, out);
            EXPECT_TRUE(at::equal(out.cpu(), expect)) << cfg.describe();
        }
    }
}

TEST(CudaCodec, EncodeOnTheGpuMatchesTheCpuGivenTheSameCodebooks) {
    core::SyntheticTokens s;
    s.frames = 2;
    at::Tensor x = core::synthetic_tokens(s);
    core::GroupQuantSpec spec{2, 64, false};
    auto cpu = core::quantize_groups(x, spec);
    auto gpu = core::quantize_groups(x.cuda(), spec);
    EXPECT_TRUE(at::equal(cpu.codes, gpu.codes.cpu()));
    EXPECT_TRUE(at::equal(cpu.scales, gpu.scales.cpu()));
    // Whole encode on the GPU: same quality as on the CPU, ids mostly identical.
    auto codec = core::Codec::create(core::default_codec_config(core::CodecMethod::kQvg));
    core::EncodedSpan a = codec->encode(x);
    core::EncodedSpan b = codec->encode(x.cuda());
    EXPECT_NEAR(a.rel_error, b.rel_error, 0.01);
    const double same =
        a.stages[0].ids.eq(b.stages[0].ids.cpu()).to(at::kFloat).mean().item<double>();
    std::printf("k-means ids identical CPU vs CUDA (ATen path): %.4f\n", same);
    EXPECT_GT(same, 0.95);
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

TEST(DecodeKernel, FusedRopeMatchesTheReference) {
    for (int stages : {0, 1, 2}) {
        for (int64_t tokens : {1, 17, 37, 1031}) {
            const Case c{2, 64, stages, 128, tokens, false};
            at::manual_seed(static_cast<uint64_t>(tokens + stages));
            const int64_t b = 1, h = 12, centroids = 256;
            Data cpu = random_data(c, b, h, stages > 0 ? centroids : 1);
            Data gpu = to_cuda(cpu);
            at::Tensor cos = at::rand({tokens, 64}) * 2 - 1, sin = at::rand({tokens, 64}) * 2 - 1;
            at::Tensor cos_g = cos.cuda(), sin_g = sin.cuda();
            at::Tensor ref_out = at::zeros({b, tokens, h, 128}, at::kBFloat16);
            at::Tensor gpu_out = ref_out.cuda();
            auto pr = params(c, cpu, b, h, stages > 0 ? centroids : 1, ref_out);
            pr.rope_cos = cos.data_ptr<float>();
            pr.rope_sin = sin.data_ptr<float>();
            kernels::qvg_decode_reference(pr);
            for (const Launch& l : all_launches(c.dim)) {
                gpu_out.zero_();
                auto pg = params(c, gpu, b, h, stages > 0 ? centroids : 1, gpu_out);
                pg.rope_cos = cos_g.data_ptr<float>();
                pg.rope_sin = sin_g.data_ptr<float>();
                apply(l, pg);
                ASSERT_EQ(kernels::qvg_decode_bf16(pg, at::cuda::getCurrentCUDAStream()),
                          cudaSuccess);
                EXPECT_TRUE(at::equal(gpu_out.cpu().view(at::kShort), ref_out.view(at::kShort)))
                    << "stages " << stages << " tokens " << tokens << " " << describe(l);
            }
        }
    }
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

// The benchmark's span ([1, 12, 37440, 128], INT2, G64, one stage of 256 centroids) and a few
// awkward token counts, with every launch shape (the default and the flat/persistent grids
// loop over many rows per block there), bit for bit against the reference.
TEST(DecodeKernel, BenchmarkShapeAndAwkwardCountsMatchTheReference) {
    for (int64_t tokens : {17, 1000, 37440}) {
        const Case c{2, 64, 1, 128, tokens, false};
        at::manual_seed(static_cast<uint64_t>(tokens));
        const int64_t b = 1, h = 12, centroids = 256;
        Data cpu = random_data(c, b, h, centroids);
        Data gpu = to_cuda(cpu);
        at::Tensor ref_out = at::zeros({b, tokens, h, 128}, at::kBFloat16);
        auto pr = params(c, cpu, b, h, centroids, ref_out);
        kernels::qvg_decode_reference(pr);
        at::Tensor gpu_out = at::empty_like(ref_out).cuda();
        for (const Launch& l : all_launches(c.dim)) {
            gpu_out.fill_(7);  // every element must be written
            auto pg = params(c, gpu, b, h, centroids, gpu_out);
            apply(l, pg);
            ASSERT_EQ(kernels::qvg_decode_bf16(pg, at::cuda::getCurrentCUDAStream()), cudaSuccess)
                << tokens << " " << describe(l);
            EXPECT_TRUE(at::equal(gpu_out.cpu().view(at::kShort), ref_out.view(at::kShort)))
                << "tokens " << tokens << " " << describe(l);
        }
    }
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

// Bulk stores copy contiguous runs of the output (the whole span, a head's tokens, or single
// rows, as the strides allow) and the pipelined grid computes addresses row by row: every
// output layout, with the padding around the view left alone.
TEST(DecodeKernel, BulkStoresAndPipelinedRowsOnEveryOutputLayout) {
    const int64_t b = 2, h = 3, centroids = 256;
    for (int64_t dim : {64, 128, 256})
        for (int64_t tokens : {1, 17, 1031}) {
            const Case c{2, 64, 1, dim, tokens, false};
            at::manual_seed(static_cast<uint64_t>(tokens * 7 + dim));
            Data cpu = random_data(c, b, h, centroids);
            Data gpu = to_cuda(cpu);
            // Buffers and the [B, N, H, D] view of each layout.
            struct Layout {
                const char* name;
                std::vector<int64_t> buffer;
                std::function<at::Tensor(const at::Tensor&)> view;
            };
            const std::vector<Layout> layouts = {
                {"[B, N, H, D] packed", {b, tokens, h, dim}, [](const at::Tensor& t) { return t; }},
                {"[B, H, N, D] packed",
                 {b, h, tokens, dim},
                 [](const at::Tensor& t) { return t.transpose(1, 2); }},
                {"[B, H, N + 3, D] slice",
                 {b, h, tokens + 3, dim},
                 [&](const at::Tensor& t) { return t.narrow(2, 2, tokens).transpose(1, 2); }},
                {"[B, N, H, D + 16] slice (rows apart)",
                 {b, tokens, h, dim + 16},
                 [&](const at::Tensor& t) { return t.narrow(3, 8, dim); }},
                {"[B, N + 2, H, D] slice",
                 {b, tokens + 2, h, dim},
                 [&](const at::Tensor& t) { return t.narrow(1, 1, tokens); }},
            };
            for (const Layout& lay : layouts) {
                at::Tensor ref_buf = at::full(lay.buffer, 7, at::kBFloat16);
                at::Tensor ref_out = lay.view(ref_buf);
                auto pr = params(c, cpu, b, h, centroids, ref_out);
                kernels::qvg_decode_reference(pr);
                for (const Launch& l : all_launches(dim)) {
                    if (!l.bulk && l.pipelined == 0 && l.parts != 0) continue;
                    at::Tensor gpu_buf = at::full(
                        lay.buffer, 7, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
                    at::Tensor gpu_out = lay.view(gpu_buf);
                    auto pg = params(c, gpu, b, h, centroids, gpu_out);
                    apply(l, pg);
                    ASSERT_EQ(kernels::qvg_decode_bf16(pg, at::cuda::getCurrentCUDAStream()),
                              cudaSuccess)
                        << lay.name << " " << name(c) << " " << describe(l);
                    EXPECT_TRUE(at::equal(gpu_buf.cpu().view(at::kShort), ref_buf.view(at::kShort)))
                        << lay.name << " " << name(c) << " " << describe(l);
                }
            }
        }
}

}  // namespace
}  // namespace qvg
