// WorldModelSession beyond plain rollouts: predicting a block without committing it leaves the
// history exactly as it was (and predicts what step() would generate), and ground truth
// committed after generation has started appends exactly one block per block of frames.

#include <algorithm>
#include <cstdlib>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "qvg/core/error.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/world_model.h"
#include "qvg/core/world_model_session.h"

namespace qvg::core {
namespace {

// The tiny model with a non-zero flow head, so that generated blocks depend on the history.
WorldModel tiny_model() {
    const WorldModelConfig c = WorldModelConfig::tiny();
    TensorMap w = init_world_model_weights(c, 11);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
    w["dit.head.head.weight"] = at::randn(w["dit.head.head.weight"].sizes(), g) * 0.1;
    return WorldModel(c, w, at::kCPU);
}

std::vector<uint8_t> random_frames(const WorldModelConfig& c, int64_t latents, uint64_t seed) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    const at::Tensor bytes = at::randint(
        0, 256, {latents * c.frames_per_latent * c.image_size * c.image_size * 3}, g, at::kByte);
    return {bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel()};
}

// Every layer's K, V and frame indices, copied.
struct Snapshot {
    std::vector<at::Tensor> k, v;
    std::vector<std::vector<int64_t>> frames;
};

Snapshot snapshot(KVCache& cache) {
    c10::InferenceMode guard;
    Snapshot s;
    for (int64_t l = 0; l < cache.num_layers(); ++l) {
        const KVView view = cache.layer(l).read();
        s.k.push_back(view.k.clone());
        s.v.push_back(view.v.clone());
        s.frames.push_back(view.frames);
    }
    return s;
}

void expect_same(const Snapshot& a, const Snapshot& b) {
    ASSERT_EQ(a.frames, b.frames);
    for (size_t l = 0; l < a.k.size(); ++l) {
        EXPECT_TRUE(at::equal(a.k[l], b.k[l])) << "layer " << l;
        EXPECT_TRUE(at::equal(a.v[l], b.v[l])) << "layer " << l;
    }
}

TEST(WorldModelSessionPredict, LeavesTheHistoryUnchangedAndMatchesStep) {
    const WorldModel model = tiny_model();
    const WorldModelConfig& c = model.config();
    const std::vector<uint8_t> ctx = random_frames(c, 2, 1);
    const std::vector<int> ctx_labels = {0, 9};
    const std::vector<int> label = {10};

    KVCache cache(world_cache_shape(model), CachePolicy{});
    WorldModelSession session(model, cache, {.steps = 3, .seed = 7});
    session.prime(ctx, 2 * c.frames_per_latent, ctx_labels);
    const Snapshot before = snapshot(cache);
    const CacheStats stats_before = cache.stats();
    const WorldFrames predicted = session.predict(label);
    EXPECT_EQ(predicted.count, c.frames_per_latent * c.chunk_latents);
    EXPECT_EQ(predicted.rgb.size(),
              static_cast<size_t>(predicted.count * c.image_size * c.image_size * 3));
    EXPECT_EQ(session.last_dit_calls(), 3);  // the steps, no clean pass
    EXPECT_EQ(session.next_latent(), 2);
    EXPECT_EQ(cache.stats().frames, stats_before.frames);
    EXPECT_EQ(cache.stats().bytes, stats_before.bytes);
    expect_same(before, snapshot(cache));

    // step() from the same state and noise generates exactly the predicted block, then commits.
    KVCache cache2(world_cache_shape(model), CachePolicy{});
    WorldModelSession session2(model, cache2, {.steps = 3, .seed = 7});
    session2.prime(ctx, 2 * c.frames_per_latent, ctx_labels);
    const WorldFrames stepped = session2.step(label);
    EXPECT_EQ(stepped.rgb, predicted.rgb);
    EXPECT_EQ(session2.next_latent(), 3);
    EXPECT_EQ(cache2.stats().frames, 3);

    // A second prediction from the unchanged history draws new noise: a different block.
    EXPECT_NE(session.predict(label).rgb, predicted.rgb);
    expect_same(before, snapshot(cache));
    // Prediction does not count as generation: context can still be given.
    EXPECT_NO_THROW(session.prime(std::span(ctx.data(), ctx.size() / 2), c.frames_per_latent,
                                  std::vector<int>{0}));
    EXPECT_THROW(session.predict(std::vector<int>{1, 2}), Error);
    EXPECT_THROW(session.predict(std::vector<int>{81}), Error);
}

TEST(WorldModelSessionCommit, GroundTruthAfterGenerationAppendsOneBlock) {
    const WorldModel model = tiny_model();
    const WorldModelConfig& c = model.config();
    const int64_t t = c.frames_per_latent;
    const std::vector<uint8_t> ctx = random_frames(c, 1, 2);
    const std::vector<uint8_t> truth = random_frames(c, 1, 3);

    KVCache cache(world_cache_shape(model), CachePolicy{});
    WorldModelSession session(model, cache, {.steps = 2, .seed = 1});
    session.prime(ctx, t, std::vector<int>{0});
    session.step(std::vector<int>{10});
    const Snapshot before = snapshot(cache);
    ASSERT_EQ(before.frames.front(), (std::vector<int64_t>{0, 1}));
    EXPECT_THROW(session.prime(truth, t, std::vector<int>{10}), Error);  // context is over
    session.commit(truth, t, std::vector<int>{10});
    EXPECT_EQ(session.next_latent(), 3);
    EXPECT_EQ(cache.stats().frames, 3);
    const Snapshot after = snapshot(cache);
    const int64_t old_tokens = 2 * c.tokens_per_latent();
    for (size_t l = 0; l < after.k.size(); ++l) {
        EXPECT_EQ(after.frames[l], (std::vector<int64_t>{0, 1, 2}));
        // The older frames are untouched; exactly one frame's tokens were added.
        EXPECT_EQ(after.k[l].size(1), old_tokens + c.tokens_per_latent());
        EXPECT_TRUE(at::equal(after.k[l].narrow(1, 0, old_tokens), before.k[l]));
        EXPECT_TRUE(at::equal(after.v[l].narrow(1, 0, old_tokens), before.v[l]));
    }
    // Generation goes on after the committed truth.
    session.step(std::vector<int>{1});
    EXPECT_EQ(session.next_latent(), 4);

    // Bad ground truth throws and leaves the history as it was.
    const Snapshot kept = snapshot(cache);
    EXPECT_THROW(session.commit(truth, t - 1, std::vector<int>{10}), Error);  // not a block
    const std::vector<uint8_t> short_truth(truth.begin(), truth.end() - 3);
    EXPECT_THROW(session.commit(short_truth, t, std::vector<int>{10}), Error);
    EXPECT_THROW(session.commit(truth, t, std::vector<int>{10, 11}), Error);  // labels
    EXPECT_THROW(session.commit(truth, t, std::vector<int>{-1}), Error);
    EXPECT_EQ(session.next_latent(), 4);
    expect_same(kept, snapshot(cache));
}

TEST(WorldModelSessionCommit, PredictionsBetweenCommitsChangeNothing) {
    // Teacher forcing: predicting a block and then committing the truth in its place leaves the
    // history that committing the truth alone leaves, bit for bit.
    const WorldModel model = tiny_model();
    const WorldModelConfig& c = model.config();
    const int64_t t = c.frames_per_latent;
    std::vector<uint8_t> all = random_frames(c, 3, 4);
    const std::vector<int> labels = {0, 9, 18};
    const size_t latent_bytes = all.size() / 3;

    KVCache forced(world_cache_shape(model), CachePolicy{});
    WorldModelSession a(model, forced, {.steps = 2, .seed = 3});
    a.prime(std::span(all.data(), latent_bytes), t, std::span(labels.data(), 1));
    for (size_t i = 1; i < 3; ++i) {
        a.predict(std::span(labels.data() + i, 1));
        a.commit(std::span(all.data() + i * latent_bytes, latent_bytes), t,
                 std::span(labels.data() + i, 1));
    }
    KVCache truth(world_cache_shape(model), CachePolicy{});
    WorldModelSession b(model, truth, {.steps = 2, .seed = 3});
    b.prime(std::span(all.data(), latent_bytes), t, std::span(labels.data(), 1));
    for (size_t i = 1; i < 3; ++i) {
        b.commit(std::span(all.data() + i * latent_bytes, latent_bytes), t,
                 std::span(labels.data() + i, 1));
    }
    EXPECT_EQ(a.next_latent(), 3);
    EXPECT_EQ(b.next_latent(), 3);
    expect_same(snapshot(truth), snapshot(forced));
    // Priming all three latents at once encodes them as one batch: the same history up to the
    // autoencoder's rounding.
    KVCache primed(world_cache_shape(model), CachePolicy{});
    WorldModelSession p(model, primed, {.steps = 2, .seed = 3});
    p.prime(all, 3 * t, labels);
    const Snapshot x = snapshot(primed), y = snapshot(forced);
    ASSERT_EQ(x.frames, y.frames);
    for (size_t l = 0; l < x.k.size(); ++l) {
        EXPECT_TRUE(at::allclose(x.k[l], y.k[l], 1e-4, 1e-5)) << "layer " << l;
        EXPECT_TRUE(at::allclose(x.v[l], y.v[l], 1e-4, 1e-5)) << "layer " << l;
    }
}

}  // namespace
}  // namespace qvg::core

namespace qvg::core {
namespace {

// A window that forgot frames shows the model contiguous positions: only relative positions
// enter attention, so a plain window generates what absolute positions would (up to the
// rounding of the RoPE tables), and a session with a sink never outgrows the RoPE tables.
TEST(WorldModelSessionPositions, AWindowIsRenumberedWithoutChangingWhatItGenerates) {
    const WorldModel model = tiny_model();
    const WorldModelConfig& c = model.config();
    const std::vector<uint8_t> ctx = random_frames(c, 1, 4);
    CachePolicy window;
    window.window_frames = 3;
    KVCache renumbered(world_cache_shape(model), window),
        absolute(world_cache_shape(model), window);
    WorldModelSession a(model, renumbered, {.steps = 2, .seed = 3});
    WorldModelSession b(model, absolute, {.steps = 2, .seed = 3, .contiguous_positions = false});
    a.prime(ctx, c.frames_per_latent, std::vector<int>{0});
    b.prime(ctx, c.frames_per_latent, std::vector<int>{0});
    for (int i = 0; i < 6; ++i) {
        a.step(std::vector<int>{10 + i});
        b.step(std::vector<int>{10 + i});
        EXPECT_TRUE(at::allclose(a.last_latents(), b.last_latents(), 1e-4, 1e-4)) << "block " << i;
    }
    EXPECT_EQ(b.next_latent(), 7);  // absolute: 1 context + 6 generated
    // Renumbered before each block: 0, 1, 2 held, block 3 committed, frame 0 forgotten.
    EXPECT_EQ(a.next_latent(), 4);
    EXPECT_EQ(renumbered.layer(0).frames(), (std::vector<int64_t>{1, 2, 3}));
    EXPECT_EQ(absolute.layer(0).frames(), (std::vector<int64_t>{4, 5, 6}));
}

TEST(WorldModelSessionPositions, ASinkAndWindowRunPastTheRopeTables) {
    const WorldModel model = tiny_model();
    const WorldModelConfig& c = model.config();
    CachePolicy p;
    p.sink_frames = 1;
    p.window_frames = 2;
    KVCache cache(world_cache_shape(model), p);
    WorldModelSession session(model, cache, {.steps = 1, .seed = 1});
    session.prime(random_frames(c, 1, 5), c.frames_per_latent, std::vector<int>{0});
    const int64_t blocks = WanRope::kDefaultMaxPositions + 8;
    for (int64_t i = 0; i < blocks; ++i) session.step(std::vector<int>{static_cast<int>(i % 81)});
    EXPECT_EQ(cache.layer(0).frames(), (std::vector<int64_t>{0, 2, 3}));  // sink 0, window 2
    EXPECT_EQ(session.next_latent(), 4);
    // Without renumbering the same session stops at the end of the tables, with a message.
    KVCache plain(world_cache_shape(model), p);
    WorldModelSession stuck(model, plain, {.steps = 1, .seed = 1, .contiguous_positions = false});
    stuck.prime(random_frames(c, 1, 5), c.frames_per_latent, std::vector<int>{0});
    for (int64_t i = 1; i < WanRope::kDefaultMaxPositions; ++i) stuck.step(std::vector<int>{0});
    EXPECT_THROW(stuck.step(std::vector<int>{0}), Error);
}

// The time of a block splits into DiT, cache (reads, appends, span encoding) and decoder, and
// the parts add up to the block's wall time.
TEST(WorldModelSessionTiming, SplitsTheBlockIntoDitCacheAndDecoder) {
    const WorldModel model = tiny_model();
    const WorldModelConfig& c = model.config();
    CachePolicy p;
    p.codec = default_codec_config(CodecMethod::kQvg);
    p.codec.centroids = 4;
    p.codec.group = 16;
    p.span_frames = 2;
    KVCache cache(world_cache_shape(model), p);
    WorldModelSession session(model, cache, {.steps = 2, .seed = 1});
    session.prime(random_frames(c, 1, 6), c.frames_per_latent, std::vector<int>{0});
    double cache_ms = 0;
    for (int i = 0; i < 4; ++i) {
        session.step(std::vector<int>{10});
        const WorldStepTiming& t = session.last_timing();
        EXPECT_GT(t.dit_ms, 0.0);
        EXPECT_GE(t.cache_ms, 0.0);
        EXPECT_GT(t.decode_ms, 0.0);
        EXPECT_LE(t.dit_ms + t.cache_ms + t.decode_ms, session.last_step_ms() + 1e-6);
        EXPECT_GE(t.dit_ms + t.cache_ms + t.decode_ms, 0.99 * session.last_step_ms());
        cache_ms += t.cache_ms;
    }
    EXPECT_GT(cache.stats().layers.front().spans, 0);
    EXPECT_GT(cache_ms, 0.0);  // spans were encoded and read
}

// Walks side by side: each walk of a batch draws the noise a session of that walk alone draws,
// so its frames are that session's (to float rounding: the batch changes the matrix shapes).
TEST(WorldModelSessionBatch, EachWalkOfABatchGeneratesWhatItWouldAlone) {
    const WorldModel model = tiny_model();
    const WorldModelConfig& c = model.config();
    const int64_t t = c.frames_per_latent, fb = c.image_size * c.image_size * 3;
    const std::vector<std::vector<uint8_t>> ctx = {random_frames(c, 2, 21),
                                                   random_frames(c, 2, 22)};
    const std::vector<std::vector<int>> ctx_labels = {{0, 9}, {0, 3}};
    const std::vector<std::vector<int>> labels = {{10}, {40}};
    const std::vector<uint64_t> seeds = {7, 8};

    std::vector<WorldFrames> alone;
    for (size_t j = 0; j < 2; ++j) {
        KVCache cache(world_cache_shape(model), CachePolicy{});
        WorldModelSession session(model, cache, {.steps = 3, .seed = seeds[j]});
        session.prime(ctx[j], 2 * t, ctx_labels[j]);
        session.step(labels[j]);
        alone.push_back(session.step(labels[j]));
    }

    KVCache cache(world_cache_shape(model, 2), CachePolicy{});
    WorldModelSession session(model, cache, {.steps = 3, .seeds = seeds});
    EXPECT_EQ(session.batch(), 2);
    std::vector<uint8_t> both = ctx[0];
    both.insert(both.end(), ctx[1].begin(), ctx[1].end());
    const std::vector<int> both_ctx = {0, 9, 0, 3}, both_labels = {10, 40};
    session.prime(both, 2 * t, both_ctx);
    session.step(both_labels);
    const WorldFrames f = session.step(both_labels);
    ASSERT_EQ(f.batch, 2);
    ASSERT_EQ(f.count, alone[0].count);
    ASSERT_EQ(f.rgb.size(), static_cast<size_t>(2 * f.count * fb));
    EXPECT_EQ(cache.stats().frames, 4);
    for (size_t j = 0; j < 2; ++j) {
        const auto* got = f.rgb.data() + j * static_cast<size_t>(f.count * fb);
        int worst = 0;
        for (size_t i = 0; i < alone[j].rgb.size(); ++i) {
            worst = std::max(worst, std::abs(int{got[i]} - int{alone[j].rgb[i]}));
        }
        EXPECT_LE(worst, 1) << "walk " << j;
    }
    // The walks differ (their own context, labels and noise), and bad sizes are refused.
    EXPECT_NE(std::vector<uint8_t>(f.rgb.begin(), f.rgb.begin() + f.count * fb), alone[1].rgb);
    EXPECT_THROW(session.step(std::vector<int>{10}), Error);
    EXPECT_THROW(session.commit(ctx[0], t * 2, ctx_labels[0]), Error);
    // The cache must hold as many walks as there are noise streams.
    KVCache single(world_cache_shape(model), CachePolicy{});
    EXPECT_THROW(WorldModelSession(model, single, {.steps = 3, .seeds = seeds}), Error);
}

}  // namespace
}  // namespace qvg::core
