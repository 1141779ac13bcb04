// The block protocol between the causal Wan DiT, the Self-Forcing loop and a History: which
// frames each call commits and reads, sink/window-aware reads by absolute frame index, the
// extension points, and bad input that must throw and leave the history as it was.

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "core/self_forcing_test_history.h"
#include "qvg/core/error.h"
#include "qvg/core/flow_noise.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/self_forcing.h"
#include "qvg/core/wan_config.h"
#include "qvg/core/wan_dit.h"

namespace qvg::core {
namespace {

constexpr int64_t kRows = 2, kCols = 4;  // 4x8 latents, 8 tokens per frame
constexpr int64_t kTokens = kRows * kCols;

WanConfig small_config() {
    WanConfig c = WanConfig::tiny();
    c.num_layers = 3;
    return c;
}

// Random weights of the right shapes: normalisation weights near 1, the rest small.
TensorMap random_weights(const WanConfig& config, uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    TensorMap w;
    for (const ExpectedTensor& e : WanDiT::expected_tensors(config)) {
        at::Tensor t = at::randn(e.shape, gen, at::TensorOptions().dtype(at::kFloat));
        const bool is_norm =
            e.name.find("norm") != std::string::npos && e.name.find(".weight") != std::string::npos;
        if (is_norm) {
            w[e.name] = 1 + 0.1 * t;
        } else if (e.shape.size() >= 2) {
            w[e.name] = t / std::sqrt(static_cast<double>(e.shape[1]));  // matrices, tables
        } else {
            w[e.name] = 0.1 * t;  // biases
        }
    }
    return w;
}

struct Rig {
    WanConfig config = small_config();
    WanDiT model{config, random_weights(config, 7), at::kCPU, at::kFloat};
    TextContext ctx = model.encode_text(at::randn({1, 11, config.text_dim}));

    at::Tensor latents(int64_t frames, uint64_t seed = 1) const {
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        return at::randn({1, frames, config.in_dim, 2 * kRows, 2 * kCols}, gen,
                         at::TensorOptions().dtype(at::kFloat));
    }
    static at::Tensor timesteps(int64_t frames, float t) { return at::full({1, frames}, t); }
    test::TestHistory history(test::TestCachePolicy policy = {}) const {
        return test::TestHistory(config.num_layers, kTokens, at::kFloat, at::kFloat, policy);
    }
};

std::vector<int64_t> range(int64_t first, int64_t count) {
    std::vector<int64_t> r;
    for (int64_t i = 0; i < count; ++i) r.push_back(first + i);
    return r;
}

// A snapshot of everything a history holds, to prove a failed call changed nothing.
struct Snapshot {
    std::vector<std::vector<int64_t>> frames;
    std::vector<std::vector<std::pair<int64_t, int64_t>>> appends;
    std::vector<at::Tensor> k;

    explicit Snapshot(test::TestHistory& h) {
        for (int64_t l = 0; l < h.num_layers(); ++l) {
            frames.push_back(h.layer(l).frames());
            appends.push_back(h.layer(l).append_log);
            k.push_back(h.layer(l).stored_k().defined() ? h.layer(l).stored_k().clone()
                                                        : at::Tensor());
        }
    }
    void expect_same(test::TestHistory& h) const {
        for (int64_t l = 0; l < h.num_layers(); ++l) {
            EXPECT_EQ(h.layer(l).frames(), frames[l]) << "layer " << l;
            EXPECT_EQ(h.layer(l).append_log, appends[l]) << "layer " << l;
            EXPECT_TRUE(at::equal(h.layer(l).stored_k(), k[l])) << "layer " << l;
        }
    }
};

template <typename Fn>
void expect_error_containing(Fn&& fn, const std::string& needle) {
    try {
        fn();
        ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(BlockProtocol, DenoisingCallsCommitNothingAndCleanPassCommitsTheBlock) {
    Rig rig;
    test::TestHistory history = rig.history();
    SelfForcingSession session(rig.model, rig.ctx, history, std::make_unique<SeededNoise>(3),
                               {1, 2 * kRows, 2 * kCols});
    for (int64_t b = 0; b < 3; ++b) {
        session.generate_block();
        for (int64_t l = 0; l < rig.config.num_layers; ++l) {
            const test::TestLayerHistory& layer = history.layer(l);
            // One append per block, at the block's absolute frames.
            ASSERT_EQ(layer.append_log.size(), static_cast<size_t>(b + 1)) << "layer " << l;
            EXPECT_EQ(layer.append_log.back(), std::make_pair(3 * b, int64_t{3}));
            EXPECT_EQ(layer.frames(), range(0, 3 * (b + 1)));
            // 4 denoising reads + 1 clean-pass read per block, all of the earlier blocks only.
            ASSERT_EQ(layer.read_log.size(), static_cast<size_t>(5 * (b + 1)));
            for (size_t r = layer.read_log.size() - 5; r < layer.read_log.size(); ++r) {
                EXPECT_EQ(layer.read_log[r], range(0, 3 * b)) << "block " << b << " read " << r;
            }
        }
    }
    EXPECT_EQ(session.next_frame(), 9);

    // A lone denoising call reads but never writes.
    const Snapshot before(history);
    rig.model.forward(rig.latents(3), Rig::timesteps(3, 1000), rig.ctx, &history, 9,
                      CacheWrite::kAttendOnly);
    before.expect_same(history);
}

// Captures the pre-RoPE K/V the model hands to an extra attention branch.
class CapturingBranch final : public AttentionBranch {
  public:
    at::Tensor forward(const AttentionBranchInput& in) override {
        k.push_back(in.k.clone());
        v.push_back(in.v.clone());
        EXPECT_EQ(in.frames * in.rows * in.cols, in.q.size(1));
        return at::zeros_like(in.x);
    }
    std::vector<at::Tensor> k, v;
};

TEST(BlockProtocol, CleanPassCommitsPreRopeKeysAndValues) {
    Rig rig;
    test::TestHistory history = rig.history();
    const at::Tensor x = rig.latents(3);
    const at::Tensor plain =
        rig.model.forward(x, Rig::timesteps(3, 0), rig.ctx, &history, 0, CacheWrite::kAttendOnly);
    CapturingBranch branch;
    ForwardExtras extras;
    extras.branch = &branch;
    const at::Tensor flow = rig.model.forward(x, Rig::timesteps(3, 0), rig.ctx, &history, 0,
                                              CacheWrite::kCommit, extras);
    // A branch returning zeros changes nothing.
    EXPECT_TRUE(at::equal(flow, plain));
    ASSERT_EQ(branch.k.size(), static_cast<size_t>(rig.config.num_layers));
    for (int64_t l = 0; l < rig.config.num_layers; ++l) {
        EXPECT_TRUE(at::equal(history.layer(l).stored_k(), branch.k[l])) << "layer " << l;
        EXPECT_TRUE(at::equal(history.layer(l).stored_v(), branch.v[l])) << "layer " << l;
    }
}

TEST(BlockProtocol, FrameEmbeddingIsAddedToTheTimeEmbedding) {
    Rig rig;
    const at::Tensor x = rig.latents(3);
    const at::Tensor t = Rig::timesteps(3, 937.5f);
    const at::Tensor plain = rig.model.forward(x, t, rig.ctx, nullptr, 0, CacheWrite::kAttendOnly);
    ForwardExtras extras;
    extras.frame_embedding = at::zeros({1, 3, rig.config.dim});
    EXPECT_TRUE(at::equal(
        rig.model.forward(x, t, rig.ctx, nullptr, 0, CacheWrite::kAttendOnly, extras), plain));
    // An embedding equal to the difference of two timesteps' e turns one into the other.
    const at::Tensor other = Rig::timesteps(3, 625.0f);
    extras.frame_embedding = rig.model.time_embedding(other) - rig.model.time_embedding(t);
    const at::Tensor shifted =
        rig.model.forward(x, t, rig.ctx, nullptr, 0, CacheWrite::kAttendOnly, extras);
    const at::Tensor direct =
        rig.model.forward(x, other, rig.ctx, nullptr, 0, CacheWrite::kAttendOnly);
    EXPECT_TRUE(at::allclose(shifted, direct, 1e-4, 1e-5));
    EXPECT_FALSE(at::allclose(plain, direct, 1e-3, 1e-3));
}

TEST(BlockProtocol, SinkAndWindowReadsUseAbsoluteFrameIndices) {
    Rig rig;
    test::TestHistory history = rig.history({/*window_frames=*/3, /*sink_frames=*/3});
    SelfForcingSession session(rig.model, rig.ctx, history, std::make_unique<SeededNoise>(5),
                               {1, 2 * kRows, 2 * kCols});
    for (int64_t b = 0; b < 4; ++b) session.generate_block();
    const std::vector<int64_t> held = {0, 1, 2, 9, 10, 11};
    const auto& reads = history.layer(0).read_log;
    EXPECT_EQ(reads[5 * 2], range(0, 6));                               // block 2
    EXPECT_EQ(reads[5 * 3], (std::vector<int64_t>{0, 1, 2, 6, 7, 8}));  // block 3
    EXPECT_EQ(history.layer(0).frames(), held);

    // RoPE makes attention depend on frame distances only: the same K/V labelled 10 frames later,
    // with the call 10 frames later, gives the same output; labelled by rank instead of by
    // absolute frame it must not.
    auto relabelled = [&](const std::vector<int64_t>& frames) {
        test::TestHistory h = rig.history();
        for (int64_t l = 0; l < rig.config.num_layers; ++l) {
            const at::Tensor k = history.layer(l).stored_k(), v = history.layer(l).stored_v();
            // Contiguous runs of `frames` are appended one at a time.
            for (size_t i = 0; i < frames.size(); ++i) {
                h.layer(l).append(k.narrow(1, static_cast<int64_t>(i) * kTokens, kTokens),
                                  v.narrow(1, static_cast<int64_t>(i) * kTokens, kTokens),
                                  frames[i]);
            }
        }
        return h;
    };
    const at::Tensor x = rig.latents(3, 9), t = Rig::timesteps(3, 833.3333f);
    test::TestHistory as_held = relabelled(held);
    test::TestHistory shifted = relabelled({10, 11, 12, 19, 20, 21});
    test::TestHistory by_rank = relabelled(range(0, 6));
    const at::Tensor reference =
        rig.model.forward(x, t, rig.ctx, &history, 12, CacheWrite::kAttendOnly);
    EXPECT_TRUE(at::equal(rig.model.forward(x, t, rig.ctx, &as_held, 12, CacheWrite::kAttendOnly),
                          reference));
    EXPECT_TRUE(
        at::allclose(rig.model.forward(x, t, rig.ctx, &shifted, 22, CacheWrite::kAttendOnly),
                     reference, 1e-4, 1e-5));
    EXPECT_FALSE(
        at::allclose(rig.model.forward(x, t, rig.ctx, &by_rank, 6, CacheWrite::kAttendOnly),
                     reference, 1e-3, 1e-3));
}

// With contiguous_positions a sink + window is renumbered before every block, so an endless
// session (the viewer) never runs out of RoPE positions; without it, it stops at the table's end.
TEST(BlockProtocol, ContiguousPositionsLetASinkAndWindowRunPastTheRopeTables) {
    Rig rig;
    CachePolicy policy;
    policy.sink_frames = 3;
    policy.window_frames = 3;
    const CacheShape shape{rig.config.num_layers, 1, rig.config.num_heads,
                           rig.config.dim / rig.config.num_heads, kTokens};
    KVCache cache(shape, policy);
    SelfForcingOptions options;
    options.contiguous_positions = true;
    options.timesteps = {1000.0f};
    SelfForcingSession session(rig.model, rig.ctx, cache, std::make_unique<SeededNoise>(5),
                               {1, 2 * kRows, 2 * kCols}, options);
    const int64_t blocks = WanRope::kDefaultMaxPositions / 3 + 4;  // past frame 1024
    for (int64_t b = 0; b < blocks; ++b) session.generate_block();
    // Before the last block: sink 0..2 and window 3..5; it was committed as 6..8.
    EXPECT_EQ(cache.layer(0).frames(), (std::vector<int64_t>{0, 1, 2, 6, 7, 8}));

    KVCache plain(shape, policy);
    options.contiguous_positions = false;
    SelfForcingSession stuck(rig.model, rig.ctx, plain, std::make_unique<SeededNoise>(5),
                             {1, 2 * kRows, 2 * kCols}, options);
    for (int64_t b = 0; b < WanRope::kDefaultMaxPositions / 3; ++b) stuck.generate_block();
    expect_error_containing([&] { stuck.generate_block(); }, "RoPE table");
}

class ThrowingBranch final : public AttentionBranch {
  public:
    at::Tensor forward(const AttentionBranchInput& in) override {
        if (in.layer == 1) throw Error("branch failed in layer 1");
        return at::zeros_like(in.x);
    }
};

TEST(BlockProtocol, BadInputThrowsAndLeavesTheHistoryUnchanged) {
    Rig rig;
    test::TestHistory history = rig.history();
    rig.model.forward(rig.latents(3), Rig::timesteps(3, 0), rig.ctx, &history, 0,
                      CacheWrite::kCommit);
    const Snapshot before(history);
    const at::Tensor x = rig.latents(3);
    const at::Tensor t = Rig::timesteps(3, 0);
    auto call = [&](const at::Tensor& xx, const at::Tensor& tt, const TextContext& c, History* h,
                    int64_t first, const ForwardExtras& extras = {}) {
        return [&rig, xx, tt, c, h, first, extras] {
            rig.model.forward(xx, tt, c, h, first, CacheWrite::kCommit, extras);
        };
    };
    expect_error_containing(call(at::randn({1, 3, 15, 4, 8}), t, rig.ctx, &history, 3),
                            "expected latents [B, F, 16, H, W]");
    expect_error_containing(call(at::randn({3, 16, 4, 8}), t, rig.ctx, &history, 3),
                            "expected latents");
    expect_error_containing(call(at::randn({1, 3, 16, 5, 8}), t, rig.ctx, &history, 3),
                            "multiple of 2");
    expect_error_containing(call(x, Rig::timesteps(2, 0), rig.ctx, &history, 3),
                            "expected timesteps [1, 3]");
    const TextContext batch2 = rig.model.encode_text(at::randn({2, 4, rig.config.text_dim}));
    expect_error_containing(call(x, t, batch2, &history, 3), "text context");
    // Frames 0..2 are already held: a second commit of them, or a call before them, is refused.
    expect_error_containing(call(x, t, rig.ctx, &history, 0), "not before this call's first");
    expect_error_containing(call(x, t, rig.ctx, &history, 1023), "RoPE table");
    test::TestHistory two_layers(2, kTokens, at::kFloat, at::kFloat);
    expect_error_containing(call(x, t, rig.ctx, &two_layers, 3), "history has 2 layers");
    expect_error_containing(call(x, t, rig.ctx, nullptr, 3), "needs a history");
    ForwardExtras bad_embedding;
    bad_embedding.frame_embedding = at::zeros({1, 2, rig.config.dim});
    expect_error_containing(call(x, t, rig.ctx, &history, 3, bad_embedding), "frame embedding");
    // A failure deep inside the call (layer 1 of 3) must not leave layer 0 committed.
    ThrowingBranch throwing;
    ForwardExtras extras;
    extras.branch = &throwing;
    expect_error_containing(call(x, t, rig.ctx, &history, 3, extras), "branch failed");
    before.expect_same(history);

    // The session refuses a skipped clean pass followed by another block, and changes nothing.
    test::TestHistory fresh = rig.history();
    SelfForcingSession session(rig.model, rig.ctx, fresh, std::make_unique<SeededNoise>(1),
                               {1, 2 * kRows, 2 * kCols});
    session.generate_block(CleanPass::kSkip);
    EXPECT_TRUE(fresh.layer(0).frames().empty());
    expect_error_containing([&] { session.generate_block(); }, "restart()");
    session.restart();
    session.generate_block();
    EXPECT_EQ(fresh.layer(0).frames(), range(0, 3));
    expect_error_containing(
        [&] {
            SelfForcingSession odd(rig.model, rig.ctx, fresh, std::make_unique<SeededNoise>(1),
                                   {1, 5, 8});
        },
        "multiples of the patch");
}

TEST(BlockProtocol, TextEncodingRejectsWrongShapes) {
    Rig rig;
    expect_error_containing(
        [&] {
            rig.model.encode_text(at::randn({1, 4, 31}));
        },
        "[B, L <= 16, 32]");
    expect_error_containing(
        [&] {
            rig.model.encode_text(at::randn({1, 17, 32}));
        },
        "[B, L <= 16, 32]");
    // Rows beyond the prompt are zero padding, not masked: a shorter prompt equals its padding.
    const at::Tensor text = at::randn({1, 5, 32});
    const TextContext a = rig.model.encode_text(text);
    const TextContext b = rig.model.encode_text(at::constant_pad_nd(text, {0, 0, 0, 11}, 0.0));
    EXPECT_TRUE(at::equal(a.embedding, b.embedding));
    EXPECT_EQ(a.k.size(), static_cast<size_t>(rig.config.num_layers));
    EXPECT_EQ(a.k[0].sizes(), at::IntArrayRef({1, 16, 2, 32}));
}

TEST(BlockProtocol, WeightProblemsAreListedTogether) {
    const WanConfig config = small_config();
    TensorMap weights = random_weights(config, 1);
    weights.erase("blocks.1.self_attn.q.weight");
    weights.erase("head.modulation");
    weights["blocks.0.ffn.0.weight"] = at::zeros({127, 64});
    weights["blocks.0.extra.weight"] = at::zeros({4});
    try {
        WanDiT model(config, weights, at::kCPU, at::kFloat);
        FAIL() << "bad weights accepted";
    } catch (const Error& e) {
        const std::string what = e.what();
        for (const char* name : {"blocks.1.self_attn.q.weight", "head.modulation",
                                 "blocks.0.ffn.0.weight", "blocks.0.extra.weight"}) {
            EXPECT_NE(what.find(name), std::string::npos) << name << " not named in: " << what;
        }
    }
    TensorMap ints = random_weights(config, 1);
    ints["head.modulation"] = at::zeros({1, 2, 64}, at::kLong);
    expect_error_containing([&] { WanDiT m(config, ints, at::kCPU, at::kFloat); },
                            "should be floating point");
    expect_error_containing(
        [&] { WanDiT m(config, random_weights(config, 1), at::kCPU, at::kHalf); },
        "float32 or bfloat16");
}

TEST(BlockProtocol, SeededNoiseIsReproducible) {
    Rig rig;
    auto run = [&](uint64_t seed) {
        test::TestHistory history = rig.history();
        SelfForcingSession session(rig.model, rig.ctx, history, std::make_unique<SeededNoise>(seed),
                                   {1, 2 * kRows, 2 * kCols});
        return at::cat({session.generate_block(), session.generate_block()}, 1);
    };
    const at::Tensor a = run(11);
    EXPECT_TRUE(at::equal(a, run(11)));
    EXPECT_FALSE(at::allclose(a, run(12)));

    // The generator is a CPU one whatever the device, so every device draws the same numbers.
    SeededNoise cpu(4);
    const at::Tensor expected = cpu.initial(0, {1, 3, 16, 4, 8}, at::TensorOptions());
    for (at::Device device : {at::Device(at::kCPU), at::Device(at::kCUDA, 0)}) {
        if (device.is_cuda() && !at::hasCUDA()) continue;
        SeededNoise noise(4);
        EXPECT_TRUE(
            at::equal(noise.initial(0, {1, 3, 16, 4, 8}, at::TensorOptions().device(device)).cpu(),
                      expected));
    }
}

}  // namespace
}  // namespace qvg::core
