// Encode and RoPE kernels against their CPU references (which tests/core ties to the codec and
// the model code), bit for bit, over swept shapes with awkward token counts.

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>

#include "../codec_rows.h"

#include "qvg/core/codec.h"
#include "qvg/core/kmeans.h"
#include "qvg/core/synthetic.h"
#include "qvg/core/wan_rope.h"
#include "qvg/kernels/qvg_encode.h"
#include "qvg/kernels/qvg_encode_cuda.h"
#include "qvg/kernels/rope.h"
#include "qvg/kernels/rope_cuda.h"

namespace qvg {
namespace {

uint16_t* bf16(const at::Tensor& t) {
    return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>());
}

TEST(EncodeKernel, ResidualQuantMatchesTheReference) {
    at::manual_seed(3);
    for (int64_t dim : {128, 256})
        for (int64_t tokens : {1, 37, 1031})
            for (int bits : {2, 4})
                for (int group : {16, 32, 64, 128})
                    for (int variant = 0; variant < 4; ++variant)
                        for (bool stage : {false, true}) {
                            // The range search (clip) with the same arithmetic as the reference.
                            const bool asym = variant % 2 == 1, clip = variant >= 2;
                            const int64_t g = 3, c = 256;
                            at::Tensor x =
                                (at::randn({g, tokens, dim}) * 3).to(at::kBFloat16).to(at::kFloat);
                            x.narrow(1, 0, 1).zero_();  // a zero-scale row
                            at::Tensor ids = at::randint(0, c, {g, tokens}).to(at::kByte);
                            at::Tensor cent = at::randn({g, c, dim}).to(at::kBFloat16);
                            auto make = [&](bool cuda, at::Tensor& codes, at::Tensor& scales,
                                            at::Tensor& zeros, at::Tensor& rs, at::Tensor& es) {
                                auto o = at::TensorOptions().device(cuda ? at::kCUDA : at::kCPU);
                                at::Tensor xx = x.to(o.device()), ii = ids.to(o.device()),
                                           cc = cent.to(o.device());
                                codes = at::empty({g, tokens, dim * bits / 8}, o.dtype(at::kByte));
                                scales = at::empty({g, tokens, dim / group}, o.dtype(at::kByte));
                                zeros = at::empty({g, tokens, dim / group}, o.dtype(at::kByte));
                                rs = at::empty({g, tokens}, o.dtype(at::kFloat));
                                es = at::empty({g, tokens}, o.dtype(at::kFloat));
                                kernels::ResidualQuantParams p;
                                p.x = xx.data_ptr<float>();
                                if (stage) {
                                    p.ids = ii.data_ptr<uint8_t>();
                                    p.centroids = bf16(cc);
                                    p.num_centroids = c;
                                }
                                p.groups = g;
                                p.tokens = tokens;
                                p.dim = dim;
                                p.bits = bits;
                                p.group = group;
                                p.asymmetric = asym;
                                p.clip_search = clip;
                                p.codes = codes.data_ptr<uint8_t>();
                                p.scales = scales.data_ptr<uint8_t>();
                                p.zeros = zeros.data_ptr<uint8_t>();
                                p.residual_sq = rs.data_ptr<float>();
                                p.error_sq = es.data_ptr<float>();
                                if (cuda) {
                                    ASSERT_EQ(kernels::residual_quant(
                                                  p, at::cuda::getCurrentCUDAStream()),
                                              cudaSuccess);
                                } else {
                                    kernels::residual_quant_reference(p);
                                }
                            };
                            at::Tensor c1, s1, z1, r1, e1, c2, s2, z2, r2, e2;
                            make(false, c1, s1, z1, r1, e1);
                            make(true, c2, s2, z2, r2, e2);
                            const std::string what =
                                "D" + std::to_string(dim) + " N" + std::to_string(tokens) + " INT" +
                                std::to_string(bits) + " G" + std::to_string(group) +
                                (asym ? " asym" : "") + (clip ? " clip" : "") +
                                (stage ? " stage" : "");
                            ASSERT_TRUE(at::equal(c1, c2.cpu())) << what;
                            ASSERT_TRUE(at::equal(s1, s2.cpu())) << what;
                            if (asym) {
                                ASSERT_TRUE(at::equal(z1, z2.cpu())) << what;
                            }
                            ASSERT_TRUE(at::allclose(r1, r2.cpu(), 1e-5, 1e-6)) << what;
                            ASSERT_TRUE(at::allclose(e1, e2.cpu(), 1e-5, 1e-6)) << what;
                        }
}

TEST(EncodeKernel, KMeansUpdateMatchesTheReference) {
    at::manual_seed(4);
    for (int64_t dim : {64, 128, 256})
        for (int64_t n : {1, 31, 3001, 70001}) {  // 70001: more than one staged chunk of ids
            const int64_t g = 3, c = 256;
            at::Tensor x = at::randn({g, n, dim}).to(at::kBFloat16);
            at::Tensor ids = at::randint(0, 200, {g, n}).to(at::kByte);  // 200.. stay empty
            at::Tensor old = at::randn({g, c, dim}).to(at::kBFloat16);
            auto run = [&](bool cuda) {
                const at::Device dev = cuda ? at::kCUDA : at::kCPU;
                at::Tensor xx = x.to(dev), ii = ids.to(dev), ol = old.to(dev);
                at::Tensor out = at::empty_like(ol);
                kernels::KMeansUpdateParams p;
                p.x = bf16(xx);
                p.ids = ii.data_ptr<uint8_t>();
                p.old = bf16(ol);
                p.out = bf16(out);
                p.groups = g;
                p.tokens = n;
                p.centroids = c;
                p.dim = dim;
                if (cuda) {
                    EXPECT_EQ(kernels::kmeans_update(p, at::cuda::getCurrentCUDAStream()),
                              cudaSuccess);
                } else {
                    kernels::kmeans_update_reference(p);
                }
                return out.cpu();
            };
            EXPECT_TRUE(at::equal(run(false), run(true))) << "D" << dim << " N" << n;
        }
}

TEST(EncodeKernel, RopeMatchesTheReference) {
    at::manual_seed(5);
    core::WanRope rope(128, at::kCUDA);
    const auto angles = rope.angles(std::vector<int64_t>{0, 1, 2, 40, 41, 1023}, 30, 52);
    const int64_t l = 6 * 30 * 52;
    at::Tensor x = at::randn({1, l, 12, 128}).to(at::kBFloat16);
    // GPU: into a slice of a larger buffer, as the model does.
    at::Tensor buf = at::zeros({1, l + 100, 12, 128},
                               at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
    core::WanRope::apply_into(x.cuda(), angles, buf.narrow(1, 100, l));
    core::WanRope cpu_rope(128, at::kCPU);
    at::Tensor expect = core::WanRope::apply(
        x, cpu_rope.angles(std::vector<int64_t>{0, 1, 2, 40, 41, 1023}, 30, 52));
    EXPECT_TRUE(at::equal(buf.narrow(1, 100, l).cpu(), expect));
}

TEST(CudaCodec, KMeansIdsMatchTheCpuOnTheSameSeed) {
    core::SyntheticTokens s;
    s.frames = 4;
    s.heads = 4;
    at::Tensor x = core::synthetic_tokens(s).view({4, -1, 128});
    for (int iters : {1, 2}) {
        core::KMeansOptions opt;
        opt.iterations = iters;
        opt.seed = 42;
        core::KMeansResult a = core::kmeans(x, opt);
        core::KMeansResult b = core::kmeans(x.cuda(), opt);
        const double same = a.ids.eq(b.ids.cpu()).to(at::kDouble).mean().item<double>();
        std::printf(
            "k-means %d iterations: ids identical CPU vs CUDA %.6f, centroids identical %s\n",
            iters, same, at::equal(a.centroids, b.centroids.cpu()) ? "yes" : "no");
        EXPECT_GE(same, 0.999);
    }
}

TEST(CudaCodec, SpanEncodeMatchesTheCpuCodec) {
    core::SyntheticTokens s;
    s.frames = 2;
    at::Tensor x = core::synthetic_tokens(s);
    for (int stages : {0, 1, 2})
        for (bool clip : {false, true}) {  // the range search runs in the fused kernel too
            core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
            cfg.stages = stages;
            cfg.clip_search = clip;
            cfg.asymmetric = clip;
            auto codec = core::Codec::create(cfg);
            core::EncodedSpan a = codec->encode(x);
            core::EncodedSpan b = codec->encode(x.cuda());
            std::printf("S%d%s: rel error CPU %.6f CUDA %.6f\n", stages, clip ? " asym clip" : "",
                        a.rel_error, b.rel_error);
            EXPECT_NEAR(a.rel_error, b.rel_error, 2e-3);
            EXPECT_EQ(a.bytes(), b.bytes());
            if (stages == 0 && !clip) {
                EXPECT_TRUE(at::equal(a.quant.codes, b.quant.codes.cpu()));
            } else if (stages == 0) {  // near-ties between ranges may go either way
                const double same =
                    a.quant.scales.eq(b.quant.scales.cpu()).to(at::kFloat).mean().item<double>();
                EXPECT_GT(same, 0.999);
            }
            // The GPU span decodes (kernel) to what the CPU codec decodes from the same data.
            core::EncodedSpan back = b;
            back.quant = {b.quant.codes.cpu(), b.quant.scales.cpu(), {}};
            if (clip) back.quant.zeros = b.quant.zeros.cpu();
            for (auto& st : back.stages) st = {st.ids.cpu(), st.centroids.cpu()};
            EXPECT_TRUE(at::equal(codec->decode(back), codec->decode(b).cpu()));
        }
}

// On the GPU too, each walk of a batch is encoded as it would be alone (k-means draws, early
// stop, warm-start pick, fused quantization with the range search).
TEST(CudaCodec, EachBatchRowEncodesAsItWouldAlone) {
    at::manual_seed(9);
    const at::Tensor x = at::randn({2, 4, 2048, 128}).to(at::kBFloat16).cuda();
    const at::Tensor next =
        (x.to(at::kFloat) + 0.1 * at::randn_like(x.to(at::kFloat))).to(at::kBFloat16);
    core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
    cfg.centroids = 16;
    cfg.iterations = 8;
    cfg.asymmetric = true;
    cfg.clip_search = true;
    auto codec = core::Codec::create(cfg);
    test::expect_rows_encode_alone(*codec, x, next);
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

at::Tensor run_assign(const at::Tensor& x, const at::Tensor& c, bool cuda, at::Tensor* dist) {
    const at::Device dev = cuda ? at::kCUDA : at::kCPU;
    at::Tensor xx = x.to(dev).contiguous(), cc = c.to(dev).contiguous();
    const int64_t g = x.size(0), n = x.size(1);
    at::Tensor ids = at::empty({g, n}, xx.options().dtype(at::kLong));
    at::Tensor d = at::empty({g, n}, xx.options().dtype(at::kFloat));
    kernels::AssignParams p;
    p.x = bf16(xx);
    p.centroids = bf16(cc);
    p.ids = ids.data_ptr<int64_t>();
    p.dist = d.data_ptr<float>();
    p.groups = g;
    p.tokens = n;
    p.num_centroids = c.size(1);
    p.dim = x.size(2);
    if (cuda) {
        EXPECT_EQ(kernels::kmeans_assign(p, at::cuda::getCurrentCUDAStream()), cudaSuccess);
    } else {
        kernels::assign_reference(p);
    }
    *dist = d.cpu();
    return ids.cpu();
}

// Integer-valued tokens and centroids: the dot products are exact in any summation order, so
// ids (ties included) and distances must match the reference bit for bit.
TEST(EncodeKernel, AssignIsExactOnExactData) {
    at::manual_seed(8);
    for (int64_t dim : {64, 128, 256})
        for (int64_t c : {1, 37, 64, 256})
            for (int64_t n : {1, 127, 129, 1031}) {
                at::Tensor x = at::randint(-3, 4, {3, n, dim}).to(at::kBFloat16);
                at::Tensor cent = at::randint(-3, 4, {3, c, dim}).to(at::kBFloat16);
                if (c > 5) cent.narrow(1, c - 1, 1).copy_(cent.narrow(1, 2, 1));  // ties
                at::Tensor d1, d2;
                at::Tensor i1 = run_assign(x, cent, false, &d1);
                at::Tensor i2 = run_assign(x, cent, true, &d2);
                ASSERT_TRUE(at::equal(i1, i2)) << "D" << dim << " C" << c << " N" << n;
                ASSERT_TRUE(at::equal(d1, d2)) << "D" << dim << " C" << c << " N" << n;
            }
}

// Real-valued data: the tensor cores sum in their own order, so a near-tie may resolve the other
// way; such a token's two candidates must then be equally near (to fp32 rounding).
TEST(EncodeKernel, AssignMatchesTheReferenceOnRealData) {
    at::manual_seed(9);
    for (int64_t dim : {64, 128, 256}) {
        at::Tensor x = at::randn({4, 3001, dim}).to(at::kBFloat16);
        at::Tensor cent = at::randn({4, 256, dim}).to(at::kBFloat16);
        at::Tensor d1, d2;
        at::Tensor i1 = run_assign(x, cent, false, &d1);
        at::Tensor i2 = run_assign(x, cent, true, &d2);
        const int64_t differ = i1.ne(i2).sum().item<int64_t>();
        EXPECT_LE(differ, i1.numel() / 1000) << "D" << dim;
        EXPECT_TRUE(at::allclose(d1, d2, 1e-5, 1e-3)) << "D" << dim;
    }
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

// Device initialisation: the same tokens as the reference (hence as the codec's host draws).
TEST(EncodeKernel, KMeansInitMatchesTheReference) {
    at::manual_seed(21);
    for (int64_t dim : {64, 128, 256})
        for (int64_t n : {1, 37, 256, 37440})
            for (int64_t c : {1, 37, 256}) {
                if (c > n) continue;
                const uint64_t seed = static_cast<uint64_t>(n * 7 + c);
                at::Tensor x = at::randn({5, n, dim}).to(at::kBFloat16);
                auto run = [&](bool cuda, int64_t period) {
                    const at::Device dev = cuda ? at::kCUDA : at::kCPU;
                    at::Tensor xx = x.to(dev);
                    at::Tensor out = at::empty({5, c, dim}, xx.options());
                    kernels::KMeansInitParams p;
                    p.x = bf16(xx);
                    p.centroids = bf16(out);
                    p.groups = 5;
                    p.tokens = n;
                    p.num_centroids = c;
                    p.dim = dim;
                    p.seed = seed;
                    p.seed_period = period;
                    if (cuda) {
                        EXPECT_EQ(kernels::kmeans_init(p, at::cuda::getCurrentCUDAStream()),
                                  cudaSuccess);
                    } else {
                        kernels::kmeans_init_reference(p);
                    }
                    return out.cpu();
                };
                for (int64_t period : {0, 2}) {  // 2: groups in items of two (batch rows)
                    EXPECT_TRUE(at::equal(run(false, period), run(true, period)))
                        << "D" << dim << " N" << n << " C" << c << " period " << period;
                }
            }
}

// Reseeding on the device: tied distances, empty clusters in some groups only, more tokens than
// one pass of the block, and a group where every cluster but one is empty.
TEST(EncodeKernel, KMeansReseedMatchesTheReference) {
    at::manual_seed(22);
    for (int64_t dim : {64, 128})
        for (int64_t n : {256, 1031, 70001}) {
            const int64_t g = 4, c = 256;
            at::Tensor x = at::randn({g, n, dim}).to(at::kBFloat16);
            at::Tensor ids = at::randint(0, 200, {g, n});
            ids[1] = at::arange(n) % c;  // nothing empty
            ids[2].fill_(7);             // 255 empty
            at::Tensor counts =
                at::zeros({g, c}, at::kLong).scatter_add_(1, ids, at::ones_like(ids)).to(at::kInt);
            at::Tensor dist = at::randint(0, 50, {g, n}).to(at::kFloat);
            dist[3] = at::rand({n}) * 1e-3;  // no ties
            at::Tensor cent = at::randn({g, c, dim}).to(at::kBFloat16);
            auto run = [&](bool cuda) {
                const at::Device dev = cuda ? at::kCUDA : at::kCPU;
                at::Tensor xx = x.to(dev), cc = counts.to(dev), dd = dist.to(dev);
                at::Tensor out = cent.to(dev).clone();
                kernels::KMeansReseedParams p;
                p.x = bf16(xx);
                p.counts = cc.data_ptr<int32_t>();
                p.dist = dd.data_ptr<float>();
                p.centroids = bf16(out);
                p.groups = g;
                p.tokens = n;
                p.num_centroids = c;
                p.dim = dim;
                if (cuda) {
                    EXPECT_EQ(kernels::kmeans_reseed(p, at::cuda::getCurrentCUDAStream()),
                              cudaSuccess);
                } else {
                    kernels::kmeans_reseed_reference(p);
                }
                return out.cpu();
            };
            EXPECT_TRUE(at::equal(run(false), run(true))) << "D" << dim << " N" << n;
        }
}

// Update member counts, uint8 assignment ids and the quantizer's ||x||^2 on the device.
TEST(EncodeKernel, CountsUint8IdsAndInputSumsMatch) {
    at::manual_seed(23);
    const int64_t g = 3, n = 3001, c = 256, dim = 128;
    at::Tensor x = at::randint(-3, 4, {g, n, dim}).to(at::kBFloat16).cuda();
    at::Tensor cent = at::randint(-3, 4, {g, c, dim}).to(at::kBFloat16).cuda();
    at::Tensor ids64 = at::empty({g, n}, x.options().dtype(at::kLong));
    at::Tensor ids8 = at::empty({g, n}, x.options().dtype(at::kByte));
    kernels::AssignParams a;
    a.x = bf16(x);
    a.centroids = bf16(cent);
    a.groups = g;
    a.tokens = n;
    a.num_centroids = c;
    a.dim = dim;
    a.ids = ids64.data_ptr<int64_t>();
    ASSERT_EQ(kernels::kmeans_assign(a, at::cuda::getCurrentCUDAStream()), cudaSuccess);
    a.ids = nullptr;
    a.ids_u8 = ids8.data_ptr<uint8_t>();
    ASSERT_EQ(kernels::kmeans_assign(a, at::cuda::getCurrentCUDAStream()), cudaSuccess);
    EXPECT_TRUE(at::equal(ids64.to(at::kByte), ids8));

    at::Tensor counts = at::empty({g, c}, x.options().dtype(at::kInt));
    kernels::KMeansUpdateParams u;
    u.x = bf16(x);
    u.ids = ids8.data_ptr<uint8_t>();
    u.old = bf16(cent);
    u.out = bf16(cent);  // in place
    u.counts = counts.data_ptr<int32_t>();
    u.groups = g;
    u.tokens = n;
    u.centroids = c;
    u.dim = dim;
    const at::Tensor expect_cent = core::kmeans_update(x.cpu(), ids64.cpu(), cent.cpu());
    ASSERT_EQ(kernels::kmeans_update(u, at::cuda::getCurrentCUDAStream()), cudaSuccess);
    EXPECT_TRUE(at::equal(cent.cpu(), expect_cent));
    EXPECT_TRUE(at::equal(
        counts.cpu().to(at::kLong),
        at::zeros({g, c}, at::kLong).scatter_add_(1, ids64.cpu(), at::ones_like(ids64.cpu()))));

    at::Tensor codes = at::empty({g, n, dim / 4}, x.options().dtype(at::kByte));
    at::Tensor scales = at::empty({g, n, dim / 64}, x.options().dtype(at::kByte));
    at::Tensor in_sq = at::empty({g, n}, x.options().dtype(at::kFloat));
    kernels::ResidualQuantParams q;
    q.x_bf16 = bf16(x);
    q.groups = g;
    q.tokens = n;
    q.dim = dim;
    q.codes = codes.data_ptr<uint8_t>();
    q.scales = scales.data_ptr<uint8_t>();
    q.input_sq = in_sq.data_ptr<float>();
    ASSERT_EQ(kernels::residual_quant(q, at::cuda::getCurrentCUDAStream()), cudaSuccess);
    EXPECT_TRUE(at::equal(in_sq.cpu(), x.cpu().to(at::kFloat).pow(2).sum(-1)));  // exact ints
}

// On integer-valued tokens every distance, sum and mean is exact in any order, so the device
// k-means (init, assign, update, reseed, convergence test, warm start) and the whole encode must
// equal the CPU codec bit for bit. Repeated rows make clusters go empty, so reseeding runs.
TEST(CudaCodec, DeviceKMeansEqualsTheCpuBitForBitOnExactData) {
    at::manual_seed(24);
    const at::Tensor rows = at::randint(-3, 4, {3, 90, 128});
    const at::Tensor x = rows.index_select(1, at::randint(0, 90, {2000})).to(at::kBFloat16);
    const at::Tensor warm = at::randint(-3, 4, {3, 64, 128}).to(at::kBFloat16);
    for (int iters : {0, 1, 2, 4})
        for (bool use_warm : {false, true}) {
            core::KMeansOptions opt;
            opt.centroids = 64;
            opt.iterations = iters;
            opt.seed = 5;
            opt.converged_fraction = 0.01;
            const core::KMeansResult a = core::kmeans(x, opt, use_warm ? warm : at::Tensor());
            const core::KMeansResult b =
                core::kmeans(x.cuda(), opt, use_warm ? warm.cuda() : at::Tensor());
            const std::string what =
                "iterations " + std::to_string(iters) + (use_warm ? " warm" : " cold");
            EXPECT_TRUE(at::equal(a.ids, b.ids.cpu())) << what;
            EXPECT_TRUE(at::equal(a.centroids, b.centroids.cpu())) << what;
            EXPECT_EQ(a.iterations_run, b.iterations_run) << what;
        }
    core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
    cfg.centroids = 64;
    auto codec = core::Codec::create(cfg);
    const at::Tensor span = x.view({1, 3, 2000, 128});
    const core::EncodedSpan a = codec->encode(span);
    const core::EncodedSpan b = codec->encode(span.cuda());
    EXPECT_TRUE(at::equal(a.stages[0].ids, b.stages[0].ids.cpu()));
    EXPECT_TRUE(at::equal(a.stages[0].centroids, b.stages[0].centroids.cpu()));
    EXPECT_TRUE(at::equal(a.quant.codes, b.quant.codes.cpu()));
    EXPECT_TRUE(at::equal(a.quant.scales, b.quant.scales.cpu()));
    EXPECT_NEAR(a.input_norm, b.input_norm, 1e-9 * a.input_norm);
    EXPECT_NEAR(a.rel_error, b.rel_error, 1e-6);
    EXPECT_NEAR(a.stage_rel_error[0], b.stage_rel_error[0], 1e-6);
}

}  // namespace
}  // namespace qvg

namespace qvg {
namespace {

// The current k-means kernels against the previous ones (kept for benchmarks) and the CPU
// reference, on awkward token counts up to the benchmark's span.

// Update: bit for bit, including a cluster that holds most tokens (its member list fills and is
// summed many times per chunk) and runs of empty clusters.
TEST(EncodeKernel, KMeansUpdateListKernelMatchesLegacyAndReference) {
    at::manual_seed(31);
    for (int64_t dim : {64, 128, 256})
        for (int64_t n : {17, 1000, 37440})
            for (bool skewed : {false, true}) {
                const int64_t g = 3, c = 256;
                at::Tensor x = at::randn({g, n, dim}).to(at::kBFloat16);
                at::Tensor ids = at::randint(0, 250, {g, n}).to(at::kByte);
                if (skewed) {
                    ids.masked_fill_(at::rand({g, n}).lt(0.9), 255);  // cluster 255: ~90%
                }
                at::Tensor old = at::randn({g, c, dim}).to(at::kBFloat16);
                auto run = [&](int how) {  // 0 reference, 1 legacy kernel, 2 current kernel
                    const at::Device dev = how == 0 ? at::kCPU : at::kCUDA;
                    at::Tensor xx = x.to(dev), ii = ids.to(dev), ol = old.to(dev);
                    at::Tensor out = at::empty_like(ol);
                    at::Tensor counts = at::empty({g, c}, ii.options().dtype(at::kInt));
                    kernels::KMeansUpdateParams p;
                    p.x = bf16(xx);
                    p.ids = ii.data_ptr<uint8_t>();
                    p.old = bf16(ol);
                    p.out = bf16(out);
                    p.counts = counts.data_ptr<int32_t>();
                    p.groups = g;
                    p.tokens = n;
                    p.centroids = c;
                    p.dim = dim;
                    p.legacy = how == 1;
                    if (how == 0) {
                        kernels::kmeans_update_reference(p);
                    } else {
                        EXPECT_EQ(kernels::kmeans_update(p, at::cuda::getCurrentCUDAStream()),
                                  cudaSuccess);
                    }
                    return std::make_pair(out.cpu(), counts.cpu());
                };
                const auto ref = run(0), legacy = run(1), now = run(2);
                const std::string what = "D" + std::to_string(dim) + " N" + std::to_string(n) +
                                         (skewed ? " skewed" : "");
                EXPECT_TRUE(at::equal(ref.first, now.first)) << what;
                EXPECT_TRUE(at::equal(ref.second, now.second)) << what;
                EXPECT_TRUE(at::equal(legacy.first, now.first)) << what;
            }
}

// Assignment: the resident-codebook kernel does the legacy kernel's arithmetic in the same order,
// so ids and distances agree bit for bit on real data too; on integer data both equal the
// reference. Group counts below, at and above the SM count spread the tiles differently.
TEST(EncodeKernel, AssignResidentKernelMatchesLegacyBitForBit) {
    at::manual_seed(32);
    for (int64_t dim : {64, 128, 256})
        for (int64_t n : {17, 1000, 37440})
            for (int64_t c : {1, 37, 256})
                for (int64_t g : {1, 12, 200}) {
                    if (g * n * dim > (int64_t{12} * 37440 * 128)) continue;
                    at::Tensor x = at::randn({g, n, dim}).to(at::kBFloat16).cuda();
                    at::Tensor cent = at::randn({g, c, dim}).to(at::kBFloat16).cuda();
                    auto run = [&](bool legacy, bool u8, bool with_dist) {
                        at::Tensor ids64 = at::full({g, n}, -1, x.options().dtype(at::kLong));
                        at::Tensor ids8 = at::full({g, n}, 0xee, x.options().dtype(at::kByte));
                        at::Tensor d = at::full({g, n}, -1.0f, x.options().dtype(at::kFloat));
                        kernels::AssignParams p;
                        p.x = bf16(x);
                        p.centroids = bf16(cent);
                        if (u8) {
                            p.ids_u8 = ids8.data_ptr<uint8_t>();
                        } else {
                            p.ids = ids64.data_ptr<int64_t>();
                        }
                        p.dist = with_dist ? d.data_ptr<float>() : nullptr;
                        p.groups = g;
                        p.tokens = n;
                        p.num_centroids = c;
                        p.dim = dim;
                        p.legacy = legacy;
                        EXPECT_EQ(kernels::kmeans_assign(p, at::cuda::getCurrentCUDAStream()),
                                  cudaSuccess);
                        return std::make_pair((u8 ? ids8.to(at::kLong) : ids64).cpu(), d.cpu());
                    };
                    const std::string what = "D" + std::to_string(dim) + " N" + std::to_string(n) +
                                             " C" + std::to_string(c) + " G" + std::to_string(g);
                    const auto old = run(true, false, true), now = run(false, false, true);
                    ASSERT_TRUE(at::equal(old.first, now.first)) << what;
                    ASSERT_TRUE(at::equal(old.second, now.second)) << what;
                    // uint8 ids and no distances (the final assignment's form).
                    const auto now8 = run(false, true, false);
                    ASSERT_TRUE(at::equal(old.first, now8.first)) << what;
                }
}

TEST(EncodeKernel, AssignResidentKernelIsExactOnTheBenchmarkShape) {
    at::manual_seed(33);
    const int64_t g = 1, n = 37440, c = 256, dim = 128;
    at::Tensor x = at::randint(-3, 4, {g, n, dim}).to(at::kBFloat16);
    at::Tensor cent = at::randint(-3, 4, {g, c, dim}).to(at::kBFloat16);
    cent.narrow(1, c - 1, 1).copy_(cent.narrow(1, 2, 1));  // ties
    at::Tensor d1, d2;
    at::Tensor i1 = run_assign(x, cent, false, &d1);
    at::Tensor i2 = run_assign(x, cent, true, &d2);
    EXPECT_TRUE(at::equal(i1, i2));
    EXPECT_TRUE(at::equal(d1, d2));
}

// Initialisation: the parallel collision check picks the tokens of the sequential one, also
// where most draws land at or above N - C (N close to C: the pending path).
TEST(EncodeKernel, KMeansInitParallelCheckMatchesLegacy) {
    at::manual_seed(34);
    for (int64_t n : {17, 256, 300, 1000, 37440})
        for (int64_t c : {1, 17, 256}) {
            if (c > n) continue;
            const int64_t g = 7, dim = 64;
            at::Tensor x = at::randn({g, n, dim}).to(at::kBFloat16);
            for (uint64_t seed : {uint64_t{1}, uint64_t{99}, uint64_t{12345}}) {
                auto run = [&](int how) {
                    const at::Device dev = how == 0 ? at::kCPU : at::kCUDA;
                    at::Tensor xx = x.to(dev);
                    at::Tensor out = at::empty({g, c, dim}, xx.options());
                    kernels::KMeansInitParams p;
                    p.x = bf16(xx);
                    p.centroids = bf16(out);
                    p.groups = g;
                    p.tokens = n;
                    p.num_centroids = c;
                    p.dim = dim;
                    p.seed = seed;
                    p.legacy = how == 1;
                    if (how == 0) {
                        kernels::kmeans_init_reference(p);
                    } else {
                        EXPECT_EQ(kernels::kmeans_init(p, at::cuda::getCurrentCUDAStream()),
                                  cudaSuccess);
                    }
                    return out.cpu();
                };
                const at::Tensor ref = run(0);
                EXPECT_TRUE(at::equal(ref, run(1))) << "N" << n << " C" << c << " seed " << seed;
                EXPECT_TRUE(at::equal(ref, run(2))) << "N" << n << " C" << c << " seed " << seed;
            }
        }
}

}  // namespace
}  // namespace qvg
