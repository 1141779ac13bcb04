// Self-Forcing on the tiny causal Wan DiT against tensors dumped from the upstream reference
// (tests/data/self_forcing_tiny, see its config.json): every stage of the first call, then the
// whole 3-block protocol (4 denoising steps + clean pass per block) with replayed noise, in fp32
// and in bf16, on the CPU and, where present, on CUDA.

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/self_forcing_test_history.h"
#include "qvg/core/flow_noise.h"
#include "qvg/core/flow_schedule.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/self_forcing.h"
#include "qvg/core/wan_config.h"
#include "qvg/core/wan_dit.h"
#include "test_util.h"

namespace qvg::core {
namespace {

constexpr int64_t kFramesPerBlock = 3;
constexpr int64_t kBlocks = 3;
constexpr int64_t kSteps = 4;
constexpr int64_t kTokensPerFrame = 8;  // 4x8 latents, patch 2x2
// fp32 against the fp32 reference: reordering noise is ~1e-6 (config.json, fp32_cpu_vs_fp32_cuda).
constexpr double kFp32RelL2 = 1e-4;
// bf16 against the bf16 reference: both round to bf16 after every op, in slightly different
// places (fused modulation, fp32 RoPE), and the differences grow over the 15 chained calls.
// The reference's own bf16-vs-fp32 distance is 7e-3 of the largest value (config.json).
constexpr double kBf16RelL2 = 2e-2;
constexpr double kBf16MaxAbs = 1e-1;

struct Fixture {
    std::shared_ptr<const SafetensorsFile> io =
        SafetensorsFile::open(test_data("self_forcing_tiny/io.safetensors"));
    std::shared_ptr<const SafetensorsFile> weight_file =
        SafetensorsFile::open(test_data("self_forcing_tiny/weights.safetensors"));

    at::Tensor operator[](const std::string& name) const { return io->tensor(name); }
    TensorMap weights() const {
        TensorMap w;
        for (const auto& info : weight_file->tensors())
            w[info.name] = weight_file->tensor(info.name);
        return w;
    }
    std::map<std::string, at::Tensor> noise() const {
        std::map<std::string, at::Tensor> n;
        for (const auto& info : io->tensors()) {
            if (info.name == "noise" || info.name.rfind("renoise_", 0) == 0) {
                n[info.name] = io->tensor(info.name);
            }
        }
        return n;
    }
};

std::vector<at::Device> devices() {
    std::vector<at::Device> d = {at::Device(at::kCPU)};
    if (at::hasCUDA()) d.emplace_back(at::kCUDA, 0);
    return d;
}

std::string run_name(at::Device device, at::ScalarType dtype) {
    return fmt::format("{}/{}", device.str(), dtype == at::kFloat ? "fp32" : "bf16");
}

struct Bound {
    double rel_l2;
    double max_abs;  // < 0: not checked
};

// Compares in float64 on the CPU; prints every stage so that a divergence can be located.
void expect_close(const std::string& stage, const at::Tensor& got, const at::Tensor& ref,
                  Bound bound) {
    ASSERT_TRUE(got.defined()) << stage << ": no tensor";
    ASSERT_EQ(got.sizes(), ref.sizes()) << stage;
    const at::Tensor g = got.to(at::kCPU, at::kDouble), r = ref.to(at::kCPU, at::kDouble);
    const double max_abs = (g - r).abs().max().item<double>();
    const double ref_norm = r.norm().item<double>();
    const double rel_l2 = (g - r).norm().item<double>() / (ref_norm > 0 ? ref_norm : 1.0);
    std::printf("  %-34s max_abs %.3e  rel_l2 %.3e  (ref max %.3f)\n", stage.c_str(), max_abs,
                rel_l2, r.abs().max().item<double>());
    EXPECT_LE(rel_l2, bound.rel_l2) << stage << ": max abs diff " << max_abs;
    if (bound.max_abs >= 0) {
        EXPECT_LE(max_abs, bound.max_abs) << stage << ": rel L2 " << rel_l2;
    }
}

class SelfForcingGolden : public ::testing::Test {
  protected:
    void SetUp() override {
        // The reference fp32 run disabled TF32.
        at::globalContext().setAllowTF32CuBLAS(false);
        at::globalContext().setAllowTF32CuDNN(false);
    }
    Fixture fx;
};

TEST_F(SelfForcingGolden, ScheduleMatchesBitForBit) {
    FlowSchedule schedule;
    EXPECT_TRUE(at::equal(schedule.sigmas(), fx["scheduler_sigmas"]));
    EXPECT_TRUE(at::equal(schedule.timesteps(), fx["scheduler_timesteps"]));
    const std::vector<float> steps = schedule.self_forcing_steps();
    const at::Tensor ref_steps = fx["denoising_step_list"], ref_sigmas = fx["denoising_sigmas"];
    ASSERT_EQ(static_cast<int64_t>(steps.size()), kSteps);
    for (int64_t j = 0; j < kSteps; ++j) {
        EXPECT_EQ(steps[j], ref_steps[j].item<float>()) << "step " << j;
        EXPECT_EQ(schedule.sigma(steps[j]), ref_sigmas[j].item<float>()) << "step " << j;
    }
    EXPECT_EQ(steps, (std::vector<float>{1000.0f, 937.5f, 833.3333129882812f, 625.0f}));
}

TEST_F(SelfForcingGolden, FirstCallStagesMatchFp32) {
    for (at::Device device : devices()) {
        std::printf("[%s] first call, block 0 step 0\n", run_name(device, at::kFloat).c_str());
        WanDiT model(WanConfig::tiny(), fx.weights(), device, at::kFloat);
        const TextContext ctx = model.encode_text(fx["text_embeds"].to(device));
        expect_close("text_embedding", ctx.embedding, fx["fp32/dbg_text_embedding"],
                     {kFp32RelL2, -1});
        const at::Tensor t = fx["fp32/t_b0_s0"].to(device);
        expect_close("time_embedding", model.time_embedding(t).view({3, -1}),
                     fx["fp32/dbg_time_embedding"], {kFp32RelL2, -1});

        std::map<std::string, at::Tensor> stages;
        ForwardExtras extras;
        extras.probe = [&](std::string_view stage, const at::Tensor& value) {
            stages[std::string(stage)] = value;
        };
        test::TestHistory history(2, kTokensPerFrame, at::kFloat, at::kFloat);
        const at::Tensor flow = model.forward(fx["fp32/xt_b0_s0"].to(device), t, ctx, &history, 0,
                                              CacheWrite::kAttendOnly, extras);
        // dbg_patch_embedding is the Conv3d output [B, dim, F, rows, cols].
        expect_close("patch_embedding", stages.at("patch_embedding"),
                     fx["fp32/dbg_patch_embedding"].flatten(2).transpose(1, 2), {kFp32RelL2, -1});
        expect_close("time_embedding (probe)", stages.at("time_embedding").view({3, -1}),
                     fx["fp32/dbg_time_embedding"], {kFp32RelL2, -1});
        expect_close("time_projection", stages.at("time_projection").view({3, -1}),
                     fx["fp32/dbg_time_projection"], {kFp32RelL2, -1});
        for (int i = 0; i < 2; ++i) {
            for (const char* part : {"_self_attn", "_cross_attn", "_ffn", ""}) {
                const std::string name = fmt::format("block{}{}", i, part);
                expect_close(name, stages.at(name), fx["fp32/dbg_" + name], {kFp32RelL2, -1});
            }
        }
        expect_close("head", stages.at("head"), fx["fp32/dbg_head"], {kFp32RelL2, -1});
        expect_close("flow_b0_s0", flow, fx["fp32/flow_b0_s0"], {kFp32RelL2, -1});
        EXPECT_TRUE(history.layer(0).append_log.empty());
    }
}

// Upstream's cache holds post-RoPE keys in a [1, 72, H, D] buffer; ours holds pre-RoPE keys of
// the committed frames. Rotating ours with the frames' absolute indices must give upstream's rows.
void expect_cache_matches(const std::string& prefix, const Fixture& fx, const WanDiT& model,
                          test::TestHistory& history, int64_t block, Bound bound) {
    const int64_t rows_used = (block + 1) * kFramesPerBlock * kTokensPerFrame;
    for (int64_t l = 0; l < 2; ++l) {
        test::TestLayerHistory& layer = history.layer(l);
        std::vector<int64_t> expected_frames;
        for (int64_t f = 0; f < (block + 1) * kFramesPerBlock; ++f) expected_frames.push_back(f);
        ASSERT_EQ(layer.frames(), expected_frames);
        const at::Tensor ref_k = fx[fmt::format("{}/kv_l{}_b{}_k", prefix, l, block)];
        const at::Tensor ref_v = fx[fmt::format("{}/kv_l{}_b{}_v", prefix, l, block)];
        // Rows of later blocks are still zero in the reference.
        if (rows_used < ref_k.size(1)) {
            EXPECT_TRUE(
                at::equal(ref_k.narrow(1, rows_used, ref_k.size(1) - rows_used),
                          at::zeros({1, ref_k.size(1) - rows_used, 2, 32}, ref_k.options())));
        }
        const at::Tensor k = layer.stored_k().to(model.dtype());
        const at::Tensor k_rot = WanRope::apply(k, model.rope().angles(layer.frames(), 2, 4));
        expect_close(fmt::format("kv_l{}_b{}_k (RoPE at read)", l, block), k_rot,
                     ref_k.narrow(1, 0, rows_used), bound);
        expect_close(fmt::format("kv_l{}_b{}_v", l, block), layer.stored_v(),
                     ref_v.narrow(1, 0, rows_used), bound);
    }
}

// The protocol of config.json, step by step, each stage compared with the reference run.
void run_protocol(const Fixture& fx, at::Device device, at::ScalarType dtype, Bound bound) {
    const std::string prefix = dtype == at::kFloat ? "fp32" : "bf16";
    std::printf("[%s] 3 blocks x (4 steps + clean pass)\n", run_name(device, dtype).c_str());
    WanDiT model(WanConfig::tiny(), fx.weights(), device, dtype);
    test::TestHistory history(2, kTokensPerFrame, dtype, dtype);
    const TextContext ctx = model.encode_text(fx["text_embeds"].to(device));
    for (int64_t l = 0; l < 2; ++l) {
        expect_close(fmt::format("xattn_l{}_k", l), ctx.k[l],
                     fx[fmt::format("{}/xattn_l{}_k", prefix, l)], bound);
        expect_close(fmt::format("xattn_l{}_v", l), ctx.v[l],
                     fx[fmt::format("{}/xattn_l{}_v", prefix, l)], bound);
    }
    FlowSchedule schedule;
    const std::vector<float> steps = schedule.self_forcing_steps();
    ReplayedNoise noise(fx.noise(), kFramesPerBlock);
    const std::vector<int64_t> shape = {1, kFramesPerBlock, 16, 4, 8};
    const auto options = at::TensorOptions().device(device).dtype(dtype);
    std::vector<at::Tensor> outputs;
    for (int64_t b = 0; b < kBlocks; ++b) {
        const int64_t first = b * kFramesPerBlock;
        at::Tensor x = noise.initial(b, shape, options);
        at::Tensor x0;
        for (int64_t j = 0; j < kSteps; ++j) {
            const std::string id = fmt::format("b{}_s{}", b, j);
            expect_close("xt_" + id, x, fx[prefix + "/xt_" + id], bound);
            const at::Tensor t =
                at::full({1, kFramesPerBlock}, steps[j], at::TensorOptions().device(device));
            EXPECT_TRUE(at::equal(t.cpu(), fx[prefix + "/t_" + id])) << id;
            const at::Tensor flow =
                model.forward(x, t, ctx, &history, first, CacheWrite::kAttendOnly);
            expect_close("flow_" + id, flow, fx[prefix + "/flow_" + id], bound);
            x0 = schedule.to_x0(x, flow, steps[j]);
            expect_close("x0_" + id, x0, fx[prefix + "/x0_" + id], bound);
            if (j + 1 < kSteps)
                x = schedule.add_noise(x0, noise.renoise(b, j, shape, options), steps[j + 1]);
        }
        for (int64_t l = 0; l < 2; ++l)
            EXPECT_EQ(static_cast<int64_t>(history.layer(l).frames().size()), first);
        const at::Tensor t0 = at::zeros({1, kFramesPerBlock}, at::TensorOptions().device(device));
        EXPECT_TRUE(at::equal(t0.cpu(), fx[fmt::format("{}/t_b{}_clean", prefix, b)]));
        const at::Tensor clean = model.forward(x0, t0, ctx, &history, first, CacheWrite::kCommit);
        expect_close(fmt::format("flow_b{}_clean", b), clean,
                     fx[fmt::format("{}/flow_b{}_clean", prefix, b)], bound);
        expect_cache_matches(prefix, fx, model, history, b, bound);
        outputs.push_back(x0);
    }
    expect_close("output", at::cat(outputs, 1), fx[prefix + "/output"], bound);
    if (dtype != at::kFloat) {
        // The reference's own bf16 run is 7.6e-3 of the largest value away from its fp32 run.
        expect_close("output vs fp32 reference", at::cat(outputs, 1), fx["fp32/output"], bound);
    }
}

TEST_F(SelfForcingGolden, ProtocolMatchesFp32PerStage) {
    for (at::Device device : devices()) run_protocol(fx, device, at::kFloat, {kFp32RelL2, -1});
}

TEST_F(SelfForcingGolden, ProtocolMatchesBf16) {
    for (at::Device device : devices()) {
        run_protocol(fx, device, at::kBFloat16, {kBf16RelL2, kBf16MaxAbs});
    }
}

TEST_F(SelfForcingGolden, SessionReproducesTheReferenceRun) {
    for (at::Device device : devices()) {
        for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
            const std::string prefix = dtype == at::kFloat ? "fp32" : "bf16";
            const Bound bound =
                dtype == at::kFloat ? Bound{kFp32RelL2, -1} : Bound{kBf16RelL2, kBf16MaxAbs};
            std::printf("[%s] SelfForcingSession\n", run_name(device, dtype).c_str());
            WanDiT model(WanConfig::tiny(), fx.weights(), device, dtype);
            test::TestHistory history(2, kTokensPerFrame, dtype, dtype);
            SelfForcingOptions options;
            options.record_steps = true;
            options.timing = Timing::kDetailed;
            SelfForcingSession session(
                model, model.encode_text(fx["text_embeds"].to(device)), history,
                std::make_unique<ReplayedNoise>(fx.noise(), kFramesPerBlock), {1, 4, 8}, options);
            std::vector<at::Tensor> blocks;
            for (int64_t b = 0; b < kBlocks; ++b) {
                blocks.push_back(
                    session.generate_block(b + 1 < kBlocks ? CleanPass::kRun : CleanPass::kSkip));
                EXPECT_EQ(blocks.back().sizes(), at::IntArrayRef({1, 3, 16, 4, 8}));
                EXPECT_EQ(blocks.back().scalar_type(), dtype);
            }
            expect_close("output", at::cat(blocks, 1), fx[prefix + "/output"], bound);
            ASSERT_EQ(session.steps().size(), static_cast<size_t>(kBlocks * kSteps));
            for (const StepRecord& r : session.steps()) {
                const std::string id = fmt::format("b{}_s{}", r.block, r.step);
                expect_close("x0_" + id, r.x0, fx[prefix + "/x0_" + id], bound);
                expect_close("flow_" + id, r.flow, fx[prefix + "/flow_" + id], bound);
            }
            ASSERT_EQ(session.timings().size(), static_cast<size_t>(kBlocks));
            for (const BlockTiming& timing : session.timings()) {
                EXPECT_EQ(timing.dit_calls, timing.block + 1 < kBlocks ? 5 : 4);
                EXPECT_GT(timing.dit_ms, 0.0);
                EXPECT_GT(timing.cache_ms, 0.0);
            }
            // The last block skipped its clean pass: its frames were never committed.
            EXPECT_EQ(history.layer(0).frames().size(), 6u);
            EXPECT_TRUE(session.finished());
            EXPECT_THROW(session.generate_block(), Error);
        }
    }
}

}  // namespace
}  // namespace qvg::core
