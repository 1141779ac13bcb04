#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/error.h"
#include "qvg/core/kv_cache.h"
#include "qvg/core/synthetic.h"
#include "qvg/core/wan_rope.h"

namespace qvg::core {
namespace {

constexpr int64_t kTpf = 8 * 13;  // tokens per frame in these tests
constexpr int64_t kHeads = 2;
constexpr int64_t kDim = 128;

CacheShape small_shape(int64_t layers = 2) { return {layers, 1, kHeads, kDim, kTpf}; }

CachePolicy qvg_policy(int64_t span = 4, int64_t lag = 1, int64_t sink = 1, int64_t window = 0) {
    CachePolicy p;
    p.codec = default_codec_config(CodecMethod::kQvg);
    p.codec.centroids = 64;
    p.span_frames = span;
    p.lag_frames = lag;
    p.sink_frames = sink;
    p.window_frames = window;
    p.seed = 9;
    return p;
}

// Frames [first, first + n) of a structured sequence in the model layout [B, L, H, D].
std::pair<at::Tensor, at::Tensor> frames(int64_t first, int64_t n) {
    SyntheticTokens s;
    s.frames = n;
    s.first_frame = first;
    s.height = 8;
    s.width = 13;
    s.heads = kHeads;
    s.role = KVRole::kKey;
    at::Tensor k = synthetic_tokens(s).transpose(1, 2).contiguous();
    s.role = KVRole::kValue;
    at::Tensor v = synthetic_tokens(s).transpose(1, 2).contiguous();
    return {k, v};
}

void append_blocks(KVCache& cache, int64_t blocks, int64_t first_block = 0) {
    constexpr int64_t frames_per_block = 3;
    for (int64_t b = first_block; b < first_block + blocks; ++b) {
        auto [k, v] = frames(b * frames_per_block, frames_per_block);
        for (int64_t l = 0; l < cache.num_layers(); ++l)
            cache.layer(l).append(k, v, b * frames_per_block);
    }
}

TEST(KVCacheAccounting, ReproducesTheSelfForcingExample) {
    // qvg.md: D=128, G=64, S=1, C=256, span 37,440 tokens (24 frames of 1560), INT2; one layer at
    // 168 cached frames: 1535.6 MiB BF16 -> 220.45 MiB, 6.97x.
    CachePolicy policy;
    policy.codec = default_codec_config(CodecMethod::kQvg);
    policy.span_frames = 24;
    KVCache cache({1, 1, 12, 128, 1560}, policy);
    const int64_t bytes = cache.projected_layer_bytes(168);
    const int64_t bf16 = int64_t{168} * 1560 * 12 * 128 * 2 * 2;
    EXPECT_EQ(bytes, 231157248);
    EXPECT_EQ(bf16, 1610219520);
    EXPECT_NEAR(bytes / 1048576.0, 220.45, 0.005);
    EXPECT_NEAR(bf16 / 1048576.0, 1535.6, 0.05);
    EXPECT_NEAR(static_cast<double>(bf16) / bytes, 6.97, 0.005);
}

TEST(KVCache, SinkSpansAndTailHoldTheRightFramesAndCountEveryByte) {
    KVCache cache(small_shape(), qvg_policy());
    append_blocks(cache, 4);  // 12 frames: sink 1, spans of 4 with lag 1 -> 2 spans, tail 3
    CacheStats st = cache.stats();
    ASSERT_EQ(st.layers.size(), 2u);
    const LayerCacheStats& l0 = st.layers[0];
    EXPECT_EQ(l0.frames, 12);
    EXPECT_EQ(l0.sink_frames, 1);
    EXPECT_EQ(l0.spans, 2);
    EXPECT_EQ(l0.span_frames, 8);
    EXPECT_EQ(l0.tail_frames, 3);
    EXPECT_EQ(l0.bytes(), cache.projected_layer_bytes(12));
    EXPECT_EQ(l0.sink_bytes, kTpf * kHeads * kDim * 2 * 2);
    EXPECT_EQ(l0.bf16_bytes, 12 * kTpf * kHeads * kDim * 2 * 2);
    EXPECT_EQ(st.bytes, 2 * l0.bytes());
    EXPECT_GT(st.ratio(), 1.5);
    ASSERT_EQ(l0.key.last_stage_rel_error.size(), 1u);
    EXPECT_GT(l0.key.last_rel_error, 0.0);
    EXPECT_LT(l0.key.last_rel_error, 0.3);
    EXPECT_LE(l0.key.last_rel_error, l0.key.last_stage_rel_error[0]);

    KVView view = cache.layer(1).read();
    std::vector<int64_t> expect_frames(12);
    for (int i = 0; i < 12; ++i) expect_frames[static_cast<size_t>(i)] = i;
    EXPECT_EQ(view.frames, expect_frames);
    ASSERT_EQ(view.k.sizes(), (at::IntArrayRef{1, 12 * kTpf, kHeads, kDim}));
    EXPECT_EQ(view.k.scalar_type(), at::kBFloat16);
    auto [k, v] = frames(0, 12);
    // Sink and tail are exact; the spans are close.
    EXPECT_TRUE(at::equal(view.k.narrow(1, 0, kTpf), k.narrow(1, 0, kTpf)));
    EXPECT_TRUE(at::equal(view.v.narrow(1, 9 * kTpf, 3 * kTpf), v.narrow(1, 9 * kTpf, 3 * kTpf)));
    at::Tensor mid = view.k.narrow(1, kTpf, 8 * kTpf).to(at::kFloat);
    at::Tensor ref = k.narrow(1, kTpf, 8 * kTpf).to(at::kFloat);
    EXPECT_LT(((mid - ref).norm() / ref.norm()).item<double>(), 0.3);
}

TEST(KVCache, Bf16CacheReadsExactlyWhatWasWritten) {
    CachePolicy p;  // BF16: nothing is encoded
    KVCache cache(small_shape(1), p);
    append_blocks(cache, 3);
    KVView view = cache.layer(0).read();
    auto [k, v] = frames(0, 9);
    EXPECT_TRUE(at::equal(view.k, k));
    EXPECT_TRUE(at::equal(view.v, v));
    EXPECT_EQ(cache.stats().bytes, cache.stats().bf16_bytes);
}

// A float32 model's rows held as BF16: the bytes are BF16's, reads give float32 back (rounded
// once), for the BF16 codec and for the sink and tail around QVG spans.
TEST(KVCache, HoldsFloatRowsAsBf16WhenAsked) {
    for (const bool qvg : {false, true}) {
        CachePolicy p = qvg ? qvg_policy(4, 1, 1) : CachePolicy{};
        p.hold_bf16 = true;
        KVCache cache(small_shape(1), p);
        KVCache reference(small_shape(1), qvg ? qvg_policy(4, 1, 1) : CachePolicy{});
        for (int64_t b = 0; b < 3; ++b) {
            auto [k, v] = frames(3 * b, 3);
            cache.layer(0).append(k.to(at::kFloat), v.to(at::kFloat), 3 * b);
            reference.layer(0).append(k, v, 3 * b);
        }
        EXPECT_EQ(cache.stats().bytes, reference.stats().bytes) << "qvg " << qvg;
        if (!qvg) {
            EXPECT_EQ(cache.stats().bytes, cache.stats().bf16_bytes);
        }
        const KVView got = cache.layer(0).read();
        const KVView want = reference.layer(0).read();
        EXPECT_EQ(got.k.scalar_type(), at::kFloat);
        EXPECT_EQ(got.frames, want.frames);
        // frames() are BF16 values, so the rows come back exactly; spans decode in float32
        // and round to the BF16 reference's values.
        EXPECT_TRUE(at::equal(got.k.to(at::kBFloat16), want.k)) << "qvg " << qvg;
        EXPECT_TRUE(at::equal(got.v.to(at::kBFloat16), want.v)) << "qvg " << qvg;
        // Without the flag the float32 rows stay float32 (twice the bytes).
        CachePolicy wide = qvg ? qvg_policy(4, 1, 1) : CachePolicy{};
        KVCache f32(small_shape(1), wide);
        auto [k, v] = frames(0, 3);
        f32.layer(0).append(k.to(at::kFloat), v.to(at::kFloat), 0);
        EXPECT_EQ(f32.stats().bytes, 2 * f32.stats().bf16_bytes);
    }
}

TEST(KVCache, RenumbersTheFramesItHolds) {
    CachePolicy p = qvg_policy(4, 0, 1, 5);  // sink 1, spans of 4, window 5
    KVCache cache(small_shape(2), p);
    append_blocks(cache, 4);  // frames 0..11
    const KVView before = cache.layer(1).read();
    ASSERT_EQ(before.frames.front(), 0);
    ASSERT_GT(before.frames.back(), static_cast<int64_t>(before.frames.size()) - 1);  // a gap
    const int64_t held = static_cast<int64_t>(before.frames.size());
    EXPECT_EQ(cache.renumber_frames(), held);
    for (int64_t l = 0; l < 2; ++l) {
        const KVView after = cache.layer(l).read();
        std::vector<int64_t> expected(static_cast<size_t>(held));
        for (int64_t i = 0; i < held; ++i) expected[static_cast<size_t>(i)] = i;
        EXPECT_EQ(after.frames, expected);
        if (l == 1) {
            EXPECT_TRUE(at::equal(after.k, before.k));  // the data is untouched
            EXPECT_TRUE(at::equal(after.v, before.v));
        }
    }
    // Appending continues after the renumbered frames, not after the old indices.
    auto [k, v] = frames(0, 3);
    EXPECT_THROW(cache.layer(0).append(k, v, held - 1), Error);
    cache.layer(0).append(k, v, held);
    cache.layer(1).append(k, v, held);
    EXPECT_EQ(cache.layer(0).frames().back(), held + 2);
    // An empty cache holds nothing to renumber.
    KVCache empty(small_shape(1), p);
    EXPECT_EQ(empty.renumber_frames(), 0);
}

TEST(KVCachePolicy, BoundHistoryShrinksTheWindowThenTheSinkAndFitsTheSpans) {
    CachePolicy p;
    p.sink_frames = 3;
    p.window_frames = 144;
    p.span_frames = 24;
    EXPECT_TRUE(bound_history(p, 15));
    EXPECT_EQ(p.sink_frames, 3);
    EXPECT_EQ(p.window_frames, 12);
    EXPECT_EQ(p.span_frames, 3);         // a quarter of the window
    EXPECT_FALSE(bound_history(p, 15));  // already within
    EXPECT_FALSE(bound_history(p, 63));
    CachePolicy all;  // window 0: everything
    all.span_frames = 8;
    EXPECT_TRUE(bound_history(all, 63));
    EXPECT_EQ(all.sink_frames, 0);
    EXPECT_EQ(all.window_frames, 63);
    EXPECT_EQ(all.span_frames, 8);  // short enough already
    CachePolicy big_sink;
    big_sink.sink_frames = 8;
    big_sink.window_frames = 8;
    EXPECT_TRUE(bound_history(big_sink, 4));
    EXPECT_EQ(big_sink.sink_frames, 3);
    EXPECT_EQ(big_sink.window_frames, 1);
    EXPECT_EQ(big_sink.span_frames, 1);
    CachePolicy long_spans;  // within the bound, but its spans would never fill
    long_spans.window_frames = 12;
    long_spans.span_frames = 24;
    EXPECT_TRUE(bound_history(long_spans, 15));
    EXPECT_EQ(long_spans.window_frames, 12);
    EXPECT_EQ(long_spans.span_frames, 3);
    EXPECT_THROW(bound_history(big_sink, 0), Error);

    // QVG evicts whole spans: the window leaves room for a span's slack, and the cache never
    // holds more than the bound.
    CachePolicy q = qvg_policy(24, 0, 3, 144);
    EXPECT_TRUE(bound_history(q, 15));
    EXPECT_EQ(q.sink_frames, 3);
    EXPECT_EQ(q.span_frames, 3);
    EXPECT_EQ(q.window_frames, 10);
    KVCache cache(small_shape(1), q);
    for (int64_t f = 0; f < 40; ++f) {
        auto [k, v] = frames(f, 1);
        cache.layer(0).append(k, v, f);
        EXPECT_LE(cache.stats().frames, 15) << "after frame " << f;
    }
    EXPECT_GT(cache.stats().layers.front().spans, 0);
}

TEST(KVCache, WindowAndSinkBoundTheHistory) {
    CachePolicy p;
    p.sink_frames = 3;
    p.window_frames = 4;
    KVCache cache(small_shape(1), p);
    append_blocks(cache, 5);  // frames 0..14
    KVView view = cache.layer(0).read();
    EXPECT_EQ(view.frames, (std::vector<int64_t>{0, 1, 2, 11, 12, 13, 14}));
    EXPECT_EQ(cache.stats().bytes, cache.projected_layer_bytes(15));
    auto [k, v] = frames(0, 15);
    EXPECT_TRUE(at::equal(view.k.narrow(1, 3 * kTpf, 4 * kTpf), k.narrow(1, 11 * kTpf, 4 * kTpf)));

    // With spans, whole spans are evicted but never below the window.
    KVCache q(small_shape(1), qvg_policy(4, 0, 0, 6));
    append_blocks(q, 6);  // 18 frames
    const auto st = q.stats().layers[0];
    EXPECT_GE(st.frames, 6);
    EXPECT_LT(st.frames - st.tail_frames, 6 + 4);
    EXPECT_EQ(q.layer(0).read().frames.back(), 17);
    EXPECT_EQ(st.bytes(), q.projected_layer_bytes(18));
}

TEST(KVCache, LoweringTheStageCountGivesMemoryBackAtOnce) {
    CachePolicy p = qvg_policy(4, 0, 0);
    p.codec.stages = 3;
    KVCache cache(small_shape(1), p);
    append_blocks(cache, 3);  // 9 frames: 2 spans of 3 stages
    const int64_t before = cache.stats().bytes;
    ASSERT_EQ(cache.stats().layers[0].key.last_stage_rel_error.size(), 3u);
    cache.set_stages(1);
    const CacheStats after = cache.stats();
    EXPECT_LT(after.bytes, before);
    EXPECT_EQ(after.bytes, cache.projected_layer_bytes(9));
    EXPECT_EQ(after.layers[0].key.last_stage_rel_error.size(), 1u);
    EXPECT_TRUE(after.layers[0].key.is_bound);
    // New spans use the new count.
    append_blocks(cache, 2, 3);  // frames 9..14: one more span
    EXPECT_EQ(cache.policy().codec.stages, 1);
    EXPECT_EQ(cache.stats().layers[0].spans, 3);
    EXPECT_EQ(cache.stats().bytes, cache.projected_layer_bytes(15));
    EXPECT_THROW(cache.set_stages(5), Error);
}

TEST(KVCache, BadInputThrowsAndLeavesTheCacheUnchanged) {
    KVCache cache(small_shape(1), qvg_policy());
    append_blocks(cache, 2);
    const CacheStats before = cache.stats();
    const KVView view_before = cache.layer(0).read();
    LayerHistory& layer = cache.layer(0);
    auto [k, v] = frames(6, 3);
    auto expect_unchanged = [&] {
        const CacheStats now = cache.stats();
        EXPECT_EQ(now.bytes, before.bytes);
        EXPECT_EQ(now.frames, before.frames);
        KVView view = cache.layer(0).read();
        EXPECT_EQ(view.frames, view_before.frames);
        EXPECT_TRUE(at::equal(view.k, view_before.k));
    };
    EXPECT_THROW(layer.append(k[0], v[0], 6), Error);                      // wrong rank
    EXPECT_THROW(layer.append(k.to(at::kInt), v.to(at::kInt), 6), Error);  // dtype
    EXPECT_THROW(layer.append(k.narrow(1, 0, kTpf + 1), v.narrow(1, 0, kTpf + 1), 6),
                 Error);                                                           // partial frame
    EXPECT_THROW(layer.append(k.narrow(1, 0, 0), v.narrow(1, 0, 0), 6), Error);    // empty
    EXPECT_THROW(layer.append(k.narrow(3, 0, 64), v.narrow(3, 0, 64), 6), Error);  // head dim
    EXPECT_THROW(layer.append(k, v, 2), Error);                                // frame goes back
    EXPECT_THROW(layer.append(k.to(at::kFloat), v.to(at::kFloat), 6), Error);  // dtype switch
    at::Tensor nan = k.clone();
    nan[0][3][1][2] = NAN;
    EXPECT_THROW(layer.append(nan, v, 6), Error);
    expect_unchanged();
    // An encode failure inside a span (too few tokens for the centroids) also leaves it intact.
    CachePolicy tiny = qvg_policy(1, 0, 0);
    tiny.codec.centroids = 256;  // > 104 tokens of one frame
    KVCache c2(small_shape(1), tiny);
    EXPECT_THROW(c2.layer(0).append(k, v, 0), Error);
    EXPECT_EQ(c2.stats().frames, 0);
    EXPECT_TRUE(c2.layer(0).read().empty());
    layer.append(k, v, 6);  // and the good append still works
    EXPECT_EQ(cache.stats().frames, 9);
}

}  // namespace
}  // namespace qvg::core

namespace qvg::core {
namespace {

TEST(KVCache, ReadIntoWritesWhatReadReturnsRotated) {
    KVCache cache(small_shape(1), qvg_policy());  // sink 1, spans of 4 with lag 1
    append_blocks(cache, 4);
    LayerHistory& layer = cache.layer(0);
    const KVView view = layer.read();
    EXPECT_EQ(layer.frames(), view.frames);
    WanRope rope(kDim, at::kCPU);
    const RopeAngles angles = rope.angles(view.frames, 8, 13);
    at::Tensor k = at::zeros_like(view.k), v = at::zeros_like(view.v);
    layer.read_into(k, v, &angles);
    EXPECT_TRUE(at::equal(k, WanRope::apply(view.k, angles)));
    EXPECT_TRUE(at::equal(v, view.v));
    at::Tensor k2 = at::zeros_like(view.k), v2 = at::zeros_like(view.v);
    layer.read_into(k2, v2, nullptr);
    EXPECT_TRUE(at::equal(k2, view.k));
    EXPECT_THROW(layer.read_into(k.narrow(1, 0, kTpf), v.narrow(1, 0, kTpf), nullptr), Error);
}

}  // namespace
}  // namespace qvg::core
