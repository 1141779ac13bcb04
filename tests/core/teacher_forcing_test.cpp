// Teacher forcing in one DiT call (WanDiT::forward_masked under teacher_forcing_attention): the
// frame mask, causality of the masked forward, and the one-pass flow-matching loss and its
// gradients against the block-by-block calls it replaces (one denoising call per chunk against a
// history of clean passes, then the chunk's committing clean pass).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "core/self_forcing_test_history.h"
#include "qvg/core/error.h"
#include "qvg/core/world_model.h"

namespace qvg::core {
namespace {

// Tiny weights with every path live: non-zero flow head, action output layer and biases.
TensorMap live_weights(const WorldModelConfig& c, uint64_t seed) {
    TensorMap w = init_world_model_weights(c, seed);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed + 100);
    w["dit.head.head.weight"] = at::randn(w["dit.head.head.weight"].sizes(), gen) * 0.1;
    w["action_embedding.2.weight"] = at::randn(w["action_embedding.2.weight"].sizes(), gen) * 0.1;
    for (auto& [name, t] : w) {
        if (name.ends_with(".bias")) t = at::randn(t.sizes(), gen) * 0.1;
    }
    return w;
}

at::Tensor per_frame(const at::Tensor& s) { return s.view({s.size(0), s.size(1), 1, 1, 1}); }

// The reference: the block protocol as separate calls with the draws of `noise`; the clean
// passes commit `history` (default: the ground truth z).
at::Tensor block_by_block_loss(const WorldModel& m, const at::Tensor& z, const at::Tensor& labels,
                               const FlowMatchingNoise& noise, at::Tensor history_latents = {}) {
    if (!history_latents.defined()) history_latents = z;
    const WorldModelConfig& c = m.config();
    const int64_t k = c.chunk_latents, chunks = z.size(1) / k;
    test::TestHistory history(c.dit.num_layers, c.tokens_per_latent(), at::kFloat, at::kFloat);
    const TextContext text = m.text(z.size(0));
    at::Tensor total;
    for (int64_t i = 0; i < chunks; ++i) {
        const at::Tensor zi = z.narrow(1, i * k, k), li = labels.narrow(1, i * k, k);
        const at::Tensor sigma = noise.sigma.narrow(1, i * k, k);
        const at::Tensor eps = noise.noise.narrow(1, i * k, k);
        const at::Tensor xt = (1 - per_frame(sigma)) * zi + per_frame(sigma) * eps;
        const at::Tensor v =
            m.flow(xt, sigma * 1000.0, li, text, &history, i * k, CacheWrite::kAttendOnly);
        const at::Tensor loss = at::mse_loss(v, eps - zi);
        total = total.defined() ? total + loss : loss;
        if (i + 1 < chunks) {
            const at::Tensor sc = noise.context_sigma.narrow(1, i * k, k);
            const at::Tensor xc = (1 - per_frame(sc)) * history_latents.narrow(1, i * k, k) +
                                  per_frame(sc) * noise.context_noise.narrow(1, i * k, k);
            m.flow(xc, sc * 1000.0, li, text, &history, i * k, CacheWrite::kCommit);
        }
    }
    return total / static_cast<double>(chunks);
}

// The own history of OwnHistory by separate calls: chunk i of every clip predicted in one pass
// from the ground truth noised to noise.own_history_sigma, against the clean passes of the
// ground truth before it; chunks 1.. of the clips noise.own_history marks take it.
at::Tensor own_history_block_by_block(const WorldModel& m, const at::Tensor& z,
                                      const at::Tensor& labels, const FlowMatchingNoise& noise) {
    at::NoGradGuard no_grad;
    const WorldModelConfig& c = m.config();
    const int64_t k = c.chunk_latents, chunks = z.size(1) / k;
    const double s = noise.own_history_sigma;
    test::TestHistory history(c.dit.num_layers, c.tokens_per_latent(), at::kFloat, at::kFloat);
    const TextContext text = m.text(z.size(0));
    std::vector<at::Tensor> out = {z.narrow(1, 0, k)};
    for (int64_t i = 0; i + 1 < chunks; ++i) {
        const at::Tensor zi = z.narrow(1, i * k, k), li = labels.narrow(1, i * k, k);
        const at::Tensor xh = (1 - s) * zi + s * noise.own_history_noise.narrow(1, i * k, k);
        const at::Tensor v = m.flow(xh, at::full({z.size(0), k}, s * 1000.0), li, text, &history,
                                    i * k, CacheWrite::kAttendOnly);
        if (i > 0) {
            const at::Tensor use = noise.own_history.view({z.size(0), 1, 1, 1, 1});
            out.push_back((1 - use) * zi + use * (xh - s * v));
        }
        const at::Tensor sc = noise.context_sigma.narrow(1, i * k, k);
        const at::Tensor xc =
            (1 - per_frame(sc)) * zi + per_frame(sc) * noise.context_noise.narrow(1, i * k, k);
        m.flow(xc, sc * 1000.0, li, text, &history, i * k, CacheWrite::kCommit);
    }
    out.push_back(z.narrow(1, (chunks - 1) * k, k));  // never a history: the last chunk
    return at::cat(out, 1);
}

TEST(TeacherForcing, MaskAndPositionsOfThreeChunks) {
    // Frames [c0 c1 | n0 n1 n2] (c = clean, n = noisy; one frame per chunk).
    const FrameAttention a = teacher_forcing_attention(3, 1, at::kCPU);
    EXPECT_EQ(a.positions, (std::vector<int64_t>{0, 1, 0, 1, 2}));
    const at::Tensor expected = at::tensor({1, 0, 0, 0, 0,   // c0: c0
                                            1, 1, 0, 0, 0,   // c1: c0 c1
                                            0, 0, 1, 0, 0,   // n0: n0
                                            1, 0, 0, 1, 0,   // n1: c0 n1
                                            1, 1, 0, 0, 1},  // n2: c0 c1 n2
                                           at::kInt)
                                    .view({5, 5});
    ASSERT_EQ(a.mask.scalar_type(), at::kBool);
    EXPECT_TRUE(at::equal(a.mask.to(at::kInt), expected)) << a.mask;

    // Two frames per chunk: [c0 c0' c1 c1' | n0 n0' n1 n1' n2 n2'].
    const FrameAttention b = teacher_forcing_attention(3, 2, at::kCPU);
    EXPECT_EQ(b.positions, (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 3, 4, 5}));
    const at::Tensor m = b.mask.to(at::kInt);
    // Clean frame 3 (chunk 1) sees clean frames 0..3; noisy frame 4 (index 8, chunk 2) sees the
    // four clean frames and both noisy frames of its chunk.
    EXPECT_TRUE(at::equal(m[3], at::tensor({1, 1, 1, 1, 0, 0, 0, 0, 0, 0}, at::kInt)));
    EXPECT_TRUE(at::equal(m[8], at::tensor({1, 1, 1, 1, 0, 0, 0, 0, 1, 1}, at::kInt)));
    EXPECT_TRUE(at::equal(m[5], at::tensor({0, 0, 0, 0, 1, 1, 0, 0, 0, 0}, at::kInt)));

    const FrameAttention one = teacher_forcing_attention(1, 2, at::kCPU);
    EXPECT_EQ(one.positions, (std::vector<int64_t>{0, 1}));
    EXPECT_TRUE(one.mask.all().item<bool>());
    EXPECT_THROW(teacher_forcing_attention(0, 1, at::kCPU), Error);
}

// A change in a frame's input reaches exactly the frames the mask lets see it (in any layer):
// the clean frames of later chunks and the noisy frames of its own and later chunks for a clean
// frame; only the noisy frames of its own chunk for a noisy one.
TEST(TeacherForcing, MaskedForwardIsCausal) {
    for (int64_t k : {1, 2}) {
        SCOPED_TRACE(k);
        const WorldModelConfig c = WorldModelConfig::tiny();
        const WorldModel m(c, live_weights(c, 4), at::kCPU);
        const int64_t chunks = 3, clean = (chunks - 1) * k, frames = clean + chunks * k;
        const FrameAttention attention = teacher_forcing_attention(chunks, k, at::kCPU);
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(6);
        const int64_t ls = c.latent_size();
        const at::Tensor x = at::randn({2, frames, c.latent_channels, ls, ls}, gen);
        const at::Tensor t = at::rand({2, frames}, gen) * 1000.0;
        const at::Tensor labels = at::randint(0, 81, {2, frames}, gen);
        const TextContext text = m.text(2);
        const at::Tensor base = m.flow(x, t, labels, text, attention);
        ASSERT_GT(base.abs().max().item<double>(), 1e-3);

        // Which frames a frame's input reaches: chunk index and clean/noisy of every frame.
        auto chunk_of = [&](int64_t f) { return f < clean ? f / k : (f - clean) / k; };
        auto reaches = [&](int64_t from, int64_t to) {
            const bool from_clean = from < clean, to_clean = to < clean;
            if (from_clean) {
                return to_clean ? chunk_of(to) >= chunk_of(from) : chunk_of(to) > chunk_of(from);
            }
            return !to_clean && chunk_of(to) == chunk_of(from);
        };
        for (int64_t changed : {clean - 1, clean + k, frames - 1, int64_t{0}}) {
            SCOPED_TRACE(changed);
            at::Tensor x2 = x.clone();
            x2.select(1, changed).add_(1.0);
            const at::Tensor out = m.flow(x2, t, labels, text, attention);
            for (int64_t f = 0; f < frames; ++f) {
                const double diff =
                    (out.select(1, f) - base.select(1, f)).abs().max().item<double>();
                if (reaches(changed, f)) {
                    EXPECT_GT(diff, 1e-4) << "frame " << f << " should see frame " << changed;
                } else {
                    EXPECT_LT(diff, 1e-6) << "frame " << f << " must not see frame " << changed;
                }
            }
        }
    }
}

double rel_l2(const at::Tensor& a, const at::Tensor& b) {
    return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-30);
}

// The one-pass loss and every parameter's gradient equal the block-by-block calls' (fp32 on the
// CPU, same draws), for one and for two latent frames per chunk.
TEST(TeacherForcing, OnePassLossAndGradientsMatchTheBlockByBlockCalls) {
    for (int64_t k : {1, 2}) {
        SCOPED_TRACE(k);
        WorldModelConfig c = WorldModelConfig::tiny();
        c.chunk_latents = k;
        c.context_noise_max = 0.3;  // clean inputs visibly noisy, so their draws matter
        const TensorMap w = live_weights(c, 5);
        const int64_t ls = c.latent_size(), n = 4 * k;
        at::Generator g0 = at::make_generator<at::CPUGeneratorImpl>(1);
        const at::Tensor z = at::randn({2, n, c.latent_channels, ls, ls}, g0);
        const at::Tensor labels = at::randint(0, 81, {2, n}, g0);
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
        const FlowMatchingNoise noise = draw_flow_matching_noise(c, z.sizes(), gen);

        const WorldModel one(c, w, at::kCPU, WanMode::kTraining);
        const WorldModel ref(c, w, at::kCPU, WanMode::kTraining);
        const at::Tensor a = flow_matching_loss(one, z, labels, noise);
        const at::Tensor b = block_by_block_loss(ref, z, labels, noise);
        const double la = a.item<double>(), lb = b.item<double>();
        EXPECT_LE(std::abs(la - lb) / std::abs(lb), 1e-5) << la << " vs " << lb;
        // The generator version draws the same numbers.
        at::Generator again = at::make_generator<at::CPUGeneratorImpl>(9);
        EXPECT_EQ(flow_matching_loss(one, z, labels, again).item<double>(), la);

        a.backward();
        b.backward();
        const std::vector<at::Tensor> pa = one.dit_parameters(), pb = ref.dit_parameters();
        ASSERT_EQ(pa.size(), pb.size());
        int64_t live = 0;
        double worst = 0;
        for (size_t i = 0; i < pa.size(); ++i) {
            SCOPED_TRACE(i);
            ASSERT_TRUE(pa[i].grad().defined() && pb[i].grad().defined());
            const at::Tensor ga = pa[i].grad(), gb = pb[i].grad();
            if (gb.abs().max().item<double>() > 1e-7) {
                ++live;
                worst = std::max(worst, rel_l2(ga, gb));
                EXPECT_LE(rel_l2(ga, gb), 1e-4)
                    << ga.norm().item<double>() << " vs " << gb.norm().item<double>();
            } else {
                // Structurally dead (see WorldModel.FlowLossGradients...): dead here too.
                EXPECT_LE(ga.abs().max().item<double>(), 1e-7);
            }
        }
        EXPECT_GT(live, static_cast<int64_t>(pa.size()) / 2);
        std::printf("chunk %ld: loss %.7f, relative difference %.2e; worst gradient rel L2 %.2e\n",
                    static_cast<long>(k), lb, std::abs(la - lb) / std::abs(lb), worst);
    }
}

// Own history (scheduled sampling): the one-pass loss equals the block protocol with the
// marked clips' history replaced by the model's block-by-block predictions, gradients flow, and
// with no clip marked (or no chunk to replace) it is the teacher-forcing loss.
TEST(TeacherForcing, OwnHistoryMatchesTheBlockByBlockPredictions) {
    for (int64_t k : {1, 2}) {
        SCOPED_TRACE(k);
        WorldModelConfig c = WorldModelConfig::tiny();
        c.chunk_latents = k;
        c.context_noise_max = 0.3;
        TensorMap w = live_weights(c, 5);
        // Attention values and outputs scaled up, so that the history visibly moves the loss.
        for (auto& [name, t] : w) {
            if (name.find("self_attn.v.") != std::string::npos ||
                name.find("self_attn.o.") != std::string::npos) {
                t = t * 6.0;
            }
        }
        const int64_t ls = c.latent_size(), n = 4 * k;
        at::Generator g0 = at::make_generator<at::CPUGeneratorImpl>(1);
        const at::Tensor z = at::randn({2, n, c.latent_channels, ls, ls}, g0);
        const at::Tensor labels = at::randint(0, 81, {2, n}, g0);
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
        FlowMatchingNoise noise = draw_flow_matching_noise(c, z.sizes(), gen, {1.0, 0.5});
        ASSERT_TRUE(noise.own_history.defined());
        EXPECT_EQ(noise.own_history.sum().item<double>(), 2.0);  // share 1: every clip
        EXPECT_EQ(noise.own_history_noise.sizes(), noise.context_noise.sizes());
        // The teacher-forcing draws come first and are unchanged.
        at::Generator plain_gen = at::make_generator<at::CPUGeneratorImpl>(9);
        const FlowMatchingNoise plain = draw_flow_matching_noise(c, z.sizes(), plain_gen);
        EXPECT_FALSE(plain.own_history.defined());
        EXPECT_TRUE(at::equal(plain.context_noise, noise.context_noise));
        noise.own_history = at::tensor({1.0f, 0.0f});  // the first clip only

        const WorldModel one(c, w, at::kCPU, WanMode::kTraining);
        const WorldModel ref(c, w, at::kCPU, WanMode::kTraining);
        const at::Tensor a = flow_matching_loss(one, z, labels, noise);
        const at::Tensor history = own_history_block_by_block(ref, z, labels, noise);
        EXPECT_GT((history - z).abs().max().item<double>(), 1e-3);  // the first clip's changed
        EXPECT_TRUE(at::equal(history.narrow(0, 1, 1), z.narrow(0, 1, 1)));
        EXPECT_TRUE(at::equal(history.narrow(1, 0, k), z.narrow(1, 0, k)));
        const at::Tensor b = block_by_block_loss(ref, z, labels, noise, history);
        const double la = a.item<double>(), lb = b.item<double>();
        const double teacher = flow_matching_loss(one, z, labels, plain).item<double>();
        // The own history moves the loss, and the one pass agrees with the separate calls far
        // more closely than that.
        EXPECT_GT(std::abs(lb - teacher), 1e-5);
        EXPECT_LE(std::abs(la - lb), 0.02 * std::abs(lb - teacher)) << la << " vs " << lb;
        std::printf(
            "chunk %ld: own history loss %.7f (separate calls %.7f), teacher forcing %.7f\n",
            static_cast<long>(k), la, lb, teacher);
        a.backward();
        double grad = 0;
        for (const at::Tensor& p : one.dit_parameters()) {
            if (p.grad().defined()) grad += p.grad().abs().sum().item<double>();
        }
        EXPECT_GT(grad, 0.0);

        FlowMatchingNoise none = noise;
        none.own_history = at::zeros({2});
        EXPECT_EQ(flow_matching_loss(one, z, labels, none).item<double>(), teacher);
        // Two chunks: the only history chunk is the first, which stays the ground truth.
        const at::Tensor z2 = z.narrow(1, 0, 2 * k), l2 = labels.narrow(1, 0, 2 * k);
        at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(3);
        const FlowMatchingNoise own2 = draw_flow_matching_noise(c, z2.sizes(), g2, {1.0, 0.5});
        at::Generator g2p = at::make_generator<at::CPUGeneratorImpl>(3);
        const FlowMatchingNoise plain2 = draw_flow_matching_noise(c, z2.sizes(), g2p);
        EXPECT_EQ(flow_matching_loss(one, z2, l2, own2).item<double>(),
                  flow_matching_loss(one, z2, l2, plain2).item<double>());
    }
    const WorldModelConfig c = WorldModelConfig::tiny();
    const int64_t ls = c.latent_size();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
    EXPECT_THROW(draw_flow_matching_noise(c, {1, 4, c.latent_channels, ls, ls}, gen, {1.5, 0.5}),
                 Error);
    EXPECT_THROW(draw_flow_matching_noise(c, {1, 4, c.latent_channels, ls, ls}, gen, {0.5, 0.0}),
                 Error);
}

TEST(TeacherForcing, BadInputsThrow) {
    const WorldModelConfig c = WorldModelConfig::tiny();
    const WorldModel m(c, init_world_model_weights(c, 1), at::kCPU);
    const int64_t ls = c.latent_size();
    const at::Tensor x = at::zeros({1, 3, c.latent_channels, ls, ls});
    const at::Tensor t = at::zeros({1, 3}), labels = at::zeros({1, 3}, at::kLong);
    const TextContext text = m.text(1);
    const FrameAttention good = teacher_forcing_attention(2, 1, at::kCPU);
    EXPECT_NO_THROW(m.flow(x, t, labels, text, good));
    FrameAttention short_positions = good;
    short_positions.positions.pop_back();
    EXPECT_THROW(m.flow(x, t, labels, text, short_positions), Error);
    FrameAttention float_mask = good;
    float_mask.mask = good.mask.to(at::kFloat);
    EXPECT_THROW(m.flow(x, t, labels, text, float_mask), Error);
    FrameAttention far = good;
    far.positions[2] = 5000;  // outside the RoPE table
    EXPECT_THROW(m.flow(x, t, labels, text, far), Error);

    const at::Tensor z = at::zeros({1, 2, c.latent_channels, ls, ls});
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
    FlowMatchingNoise noise = draw_flow_matching_noise(c, z.sizes(), gen);
    noise.context_noise = noise.noise;  // wrong frame count
    EXPECT_THROW(flow_matching_loss(m, z, labels.narrow(1, 0, 2), noise), Error);
    EXPECT_THROW(draw_flow_matching_noise(c, {1, 0, c.latent_channels, ls, ls}, gen), Error);
}

}  // namespace
}  // namespace qvg::core
