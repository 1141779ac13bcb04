// The built-in world model: config and weight round trips, the DiT's training mode against its
// inference mode, gradients through the block protocol, overfitting a fixed batch, rollout
// shapes and determinism, and the speed of the shipped config on this CPU.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include "core/self_forcing_test_history.h"
#include "qvg/core/error.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/world_model.h"
#include "qvg/core/world_model_session.h"

namespace qvg::core {
namespace {

// A fixed batch of smooth "videos": moving colour gradients, so there is something to learn.
at::Tensor smooth_video(const WorldModelConfig& c, int64_t n, uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t s = c.image_size;
    at::Tensor ramp = at::linspace(-1, 1, s, at::kFloat);
    at::Tensor yy = ramp.view({1, 1, s, 1}), xx = ramp.view({1, 1, 1, s});
    at::Tensor a = at::rand({n, 3 * c.frames_per_latent, 1, 1}, gen) * 2 - 1;
    at::Tensor b = at::rand({n, 3 * c.frames_per_latent, 1, 1}, gen) * 2 - 1;
    return at::tanh(a * yy + b * xx);
}

TEST(WorldModelConfig, JsonRoundTripAndValidation) {
    for (const auto& c : {WorldModelConfig::small(), WorldModelConfig::tiny()}) {
        EXPECT_EQ(WorldModelConfig::from_json(c.to_json()), c);
    }
    WorldModelConfig bad = WorldModelConfig::tiny();
    bad.dit.in_dim = 3;
    EXPECT_THROW(bad.validate(), Error);
    EXPECT_THROW(WorldModelConfig::from_json("{\"image_size\": 16}"), Error);
    EXPECT_THROW(WorldModelConfig::from_json("not json"), Error);
    const WorldModelConfig s = WorldModelConfig::small();
    EXPECT_EQ(s.latent_size(), 16);
    EXPECT_EQ(s.tokens_per_latent(), 64);
}

TEST(WorldModel, SaveLoadRoundTripAndBadWeights) {
    const WorldModelConfig c = WorldModelConfig::tiny();
    TensorMap w = init_world_model_weights(c, 7);
    w["latent.mean"] = at::full({c.latent_channels}, 0.25f);
    const WorldModel model(c, w, at::kCPU);
    const auto path = std::filesystem::path(::testing::TempDir()) / "world_model_rt.safetensors";
    model.save(path, {{"note", "test"}});
    const WorldModel loaded = WorldModel::load(path, at::kCPU);
    EXPECT_EQ(loaded.config(), c);
    const TensorMap back = loaded.weights();
    ASSERT_EQ(back.size(), w.size());
    for (const auto& [name, t] : w) {
        ASSERT_TRUE(back.count(name)) << name;
        EXPECT_TRUE(at::equal(back.at(name), t)) << name;
    }
    TensorMap missing = w;
    missing.erase("ae.dec.up1.weight");
    EXPECT_THROW(WorldModel(c, missing, at::kCPU), FormatError);
    TensorMap wrong = w;
    wrong["dit.head.head.bias"] = at::zeros({3});
    EXPECT_THROW(WorldModel(c, wrong, at::kCPU), FormatError);
    std::filesystem::remove(path);
}

// The training path (out-of-place residuals, no inference mode) computes what inference does.
TEST(WorldModel, TrainingForwardMatchesInference) {
    const WorldModelConfig c = WorldModelConfig::tiny();
    TensorMap w = init_world_model_weights(c, 3);
    // Non-zero heads and action layers so that every path contributes.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
    w["dit.head.head.weight"] = at::randn(w["dit.head.head.weight"].sizes(), gen) * 0.1;
    w["action_embedding.2.weight"] = at::randn(w["action_embedding.2.weight"].sizes(), gen) * 0.1;
    const WorldModel infer(c, w, at::kCPU, WanMode::kInference);
    const WorldModel train(c, w, at::kCPU, WanMode::kTraining);
    const int64_t ls = c.latent_size();
    at::Tensor x = at::randn({2, 2, c.latent_channels, ls, ls}, gen);
    at::Tensor ctx = at::randn({2, 1, c.latent_channels, ls, ls}, gen);
    at::Tensor t = at::tensor({300.0f, 800.0f, 10.0f, 999.0f}).view({2, 2});
    at::Tensor labels = at::tensor({0L, 5L, 80L, 13L}).view({2, 2});
    at::Tensor lctx = at::tensor({1L, 2L}).view({2, 1});
    auto run = [&](const WorldModel& m) {
        test::TestHistory cache(c.dit.num_layers, c.tokens_per_latent(), at::kFloat, at::kFloat);
        const TextContext text = m.text(2);
        m.flow(ctx, at::zeros({2, 1}), lctx, text, &cache, 0, CacheWrite::kCommit);
        return m.flow(x, t, labels, text, &cache, 1, CacheWrite::kAttendOnly).detach();
    };
    at::Tensor a;
    {
        c10::InferenceMode guard;
        a = run(infer).clone();
    }
    at::Tensor b = run(train);
    const double diff = (a - b).abs().max().item<double>();
    EXPECT_LT(diff, 1e-5) << "max abs diff " << diff;
    EXPECT_GT(a.abs().max().item<double>(), 1e-3);
    // The weights() accessor gives back what went in, under upstream names.
    const TensorMap back = train.weights();
    for (const auto& [name, tensor] : w) EXPECT_TRUE(at::allclose(back.at(name), tensor)) << name;
    EXPECT_THROW(infer.dit().parameters(), Error);
}

// Every trainable DiT tensor gets a gradient, and the loss of chunk 1 reaches chunk 0's clean
// pass through the history (the patch embedding's gradient changes with chunk 0's latents).
TEST(WorldModel, FlowLossGradientsReachEveryParameterAndTheHistory) {
    const WorldModelConfig c = WorldModelConfig::tiny();
    TensorMap w = init_world_model_weights(c, 5);
    at::Generator g0 = at::make_generator<at::CPUGeneratorImpl>(1);
    w["dit.head.head.weight"] = at::randn(w["dit.head.head.weight"].sizes(), g0) * 0.1;
    w["action_embedding.2.weight"] = at::randn(w["action_embedding.2.weight"].sizes(), g0) * 0.1;
    for (auto& [name, t] : w) {
        if (name.ends_with(".bias")) t = at::randn(t.sizes(), g0) * 0.1;
    }
    const int64_t ls = c.latent_size();
    at::Tensor z = at::randn({2, 2, c.latent_channels, ls, ls}, g0);
    at::Tensor labels = at::tensor({1L, 2L, 3L, 4L}).view({2, 2});
    auto grads = [&](const at::Tensor& latents) {
        const WorldModel m(c, w, at::kCPU, WanMode::kTraining);
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
        at::Tensor loss = flow_matching_loss(m, latents, labels, gen);
        EXPECT_TRUE(std::isfinite(loss.item<double>()));
        loss.backward();
        std::vector<at::Tensor> out;
        for (const at::Tensor& p : m.dit_parameters()) {
            EXPECT_TRUE(p.grad().defined());
            out.push_back(p.grad().clone());
        }
        int64_t nonzero = 0;
        // Live gradients are above 1e-5 here; dead ones are exactly 0 or rounding (~1e-10).
        for (const at::Tensor& g : out) nonzero += g.abs().max().item<double>() > 1e-7 ? 1 : 0;
        // Structurally dead with one constant text token: the text MLP's first weight (its input
        // is zero) and, per layer, the cross-attention's query/key path and norm3 (softmax over
        // one key is 1 whatever the query). Everything else learns.
        EXPECT_EQ(nonzero, static_cast<int64_t>(out.size()) - 1 - 8 * c.dit.num_layers);
        return out;
    };
    const auto base = grads(z);
    // Changing only chunk 0 changes chunk 1's loss only through the committed K/V.
    at::Tensor z2 = z.clone();
    z2.narrow(1, 0, 1).mul_(-1.0);
    const auto other = grads(z2);
    EXPECT_FALSE(at::allclose(base.front(), other.front()));
    EXPECT_THROW(flow_matching_loss(WorldModel(c, w, at::kCPU, WanMode::kTraining),
                                    z.narrow(1, 0, 1), labels, g0),
                 Error);
}

TEST(WorldModel, OverfitsAFixedBatch) {
    const WorldModelConfig c = WorldModelConfig::tiny();
    WorldModel model(c, init_world_model_weights(c, 1), at::kCPU, WanMode::kTraining);
    const at::Tensor video = smooth_video(c, 8, 2);

    torch::optim::AdamW ae_opt(model.autoencoder_parameters(), torch::optim::AdamWOptions(3e-3));
    double ae_first = 0, ae_last = 0;
    for (int step = 0; step < 60; ++step) {
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(100);
        ae_opt.zero_grad();
        AutoencoderLoss loss = autoencoder_loss(model, video, gen);
        loss.loss.backward();
        ae_opt.step();
        if (step == 0) ae_first = loss.mse.item<double>();
        ae_last = loss.mse.item<double>();
    }
    std::printf("autoencoder MSE %.4f -> %.4f\n", ae_first, ae_last);
    EXPECT_LT(ae_last, 0.3 * ae_first);

    // The DiT on a fixed batch of latents with fixed noise: the loss must fall well below its
    // start (about 2: the flow target noise - x0 has variance 2 for unit latents).
    at::Tensor z;
    {
        at::NoGradGuard no_grad;
        at::Tensor raw = model.encode(video);  // [8, C, h, w]
        model.set_latent_stats(raw.mean({0, 2, 3}), raw.std({0, 2, 3}).clamp_min(1e-4));
        z = model.normalize(raw).view({4, 2, c.latent_channels, c.latent_size(), c.latent_size()});
    }
    const at::Tensor labels = at::tensor({0L, 9L, 18L, 1L, 2L, 10L, 36L, 80L}).view({4, 2});
    torch::optim::AdamW opt(model.dit_parameters(), torch::optim::AdamWOptions(3e-3));
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(200);
        opt.zero_grad();
        at::Tensor loss = flow_matching_loss(model, z, labels, gen);
        loss.backward();
        opt.step();
        if (step == 0) first = loss.item<double>();
        last = loss.item<double>();
    }
    std::printf("flow matching loss %.4f -> %.4f\n", first, last);
    EXPECT_LT(last, 0.5 * first);
}

std::vector<uint8_t> context_frames(const WorldModelConfig& c, int64_t latents) {
    const at::Tensor video = smooth_video(c, latents, 4);
    return rgb8_from_video(video, c.frames_per_latent);
}

TEST(WorldModelSession, ShapesDeterminismAndErrors) {
    const WorldModelConfig c = WorldModelConfig::tiny();
    TensorMap w = init_world_model_weights(c, 8);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
    w["dit.head.head.weight"] = at::randn(w["dit.head.head.weight"].sizes(), g) * 0.1;
    const WorldModel model(c, w, at::kCPU);
    const std::vector<uint8_t> ctx = context_frames(c, 2);
    const std::vector<int> ctx_labels = {0, 1};
    auto rollout = [&](uint64_t seed) {
        KVCache cache(world_cache_shape(model), CachePolicy{});
        WorldModelSession session(model, cache, {.steps = 3, .seed = seed});
        session.prime(ctx, 2 * c.frames_per_latent, ctx_labels);
        EXPECT_EQ(session.next_latent(), 2);
        std::vector<uint8_t> all;
        for (int label : {1, 10, 80}) {
            const std::vector<int> labels = {label};
            WorldFrames f = session.step(labels);
            EXPECT_EQ(f.count, c.frames_per_latent);
            EXPECT_EQ(f.height, c.image_size);
            EXPECT_EQ(f.width, c.image_size);
            EXPECT_EQ(f.rgb.size(), static_cast<size_t>(f.count * f.height * f.width * 3));
            EXPECT_EQ(session.last_dit_calls(), 4);  // 3 steps + the clean pass
            all.insert(all.end(), f.rgb.begin(), f.rgb.end());
        }
        EXPECT_EQ(session.next_latent(), 5);
        EXPECT_EQ(cache.stats().frames, 5);
        EXPECT_EQ(session.sigmas().size(), 3u);
        return all;
    };
    const auto a = rollout(1), b = rollout(1), other = rollout(2);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, other);

    KVCache cache(world_cache_shape(model), CachePolicy{});
    WorldModelSession session(model, cache, {.seed = 0});
    EXPECT_THROW(session.prime(ctx, 3, ctx_labels), Error);  // not whole latents
    EXPECT_THROW(session.prime(ctx, 2 * c.frames_per_latent, std::vector<int>{0}), Error);
    EXPECT_THROW(session.step(std::vector<int>{81}), Error);
    EXPECT_THROW(session.step(std::vector<int>{1, 2}), Error);
    EXPECT_EQ(cache.stats().frames, 0);
    session.step(std::vector<int>{0});
    EXPECT_THROW(session.prime(ctx, 2 * c.frames_per_latent, ctx_labels), Error);
}

// The shipped config must generate at least 8 frames per second on one CPU thread. Speed does
// not depend on the weights' values, so fresh weights are used. The best block is compared, so
// that a neighbour's burst of load does not fail the test.
TEST(WorldModelSession, ShippedConfigRunsInRealTimeOnTheCpu) {
    const WorldModelConfig c = WorldModelConfig::small();
    const WorldModel model(c, init_world_model_weights(c, 0), at::kCPU);
    KVCache cache(world_cache_shape(model), CachePolicy{});
    WorldModelSession session(model, cache, {.seed = 0});
    const std::vector<uint8_t> ctx = context_frames(c, 1);
    session.prime(ctx, c.frames_per_latent, std::vector<int>{0});
    const int blocks = 8;
    double best_ms = 1e30, total_ms = 0;
    for (int i = 0; i < blocks; ++i) {
        session.step(std::vector<int>{9});
        best_ms = std::min(best_ms, session.last_step_ms());
        total_ms += session.last_step_ms();
    }
    const double frames_per_block = static_cast<double>(c.frames_per_latent * c.chunk_latents);
    const double fps_best = frames_per_block / (best_ms / 1000.0);
    const double fps_mean = frames_per_block * blocks / (total_ms / 1000.0);
    std::printf(
        "world model (%d threads): %.1f ms per block of %.0f frames, %.1f frames/s "
        "(mean %.1f)\n",
        at::get_num_threads(), best_ms, frames_per_block, fps_best, fps_mean);
    EXPECT_GE(fps_best, 8.0);
}

}  // namespace
}  // namespace qvg::core
