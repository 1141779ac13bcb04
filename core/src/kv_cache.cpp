#include "qvg/core/kv_cache.h"

#include <algorithm>
#include <deque>

#include <ATen/ATen.h>

#include "qvg/core/error.h"
#include "qvg/core/rng.h"

namespace qvg::core {
namespace {

constexpr int64_t kBf16Bytes = 2;

// Unencoded frames of K and V, [B, L, H, D] each, exactly sized (bytes held = bytes counted).
struct RawFrames {
    at::Tensor k;
    at::Tensor v;
    std::vector<int64_t> frames;

    int64_t bytes() const { return k.defined() ? k.nbytes() + v.nbytes() : 0; }

    void append(const at::Tensor& nk, const at::Tensor& nv, const std::vector<int64_t>& nframes) {
        if (nframes.empty()) return;
        k = k.defined() ? at::cat({k, nk}, 1) : nk.contiguous();
        v = v.defined() ? at::cat({v, nv}, 1) : nv.contiguous();
        frames.insert(frames.end(), nframes.begin(), nframes.end());
    }

    // Removes the oldest `n` frames; the rest is copied so the old storage is released.
    void drop_front(int64_t n, int64_t tokens_per_frame) {
        if (n <= 0) return;
        const int64_t count = static_cast<int64_t>(frames.size());
        if (n >= count) {
            *this = RawFrames{};
            return;
        }
        const int64_t start = n * tokens_per_frame;
        const int64_t len = (count - n) * tokens_per_frame;
        k = k.narrow(1, start, len).clone();
        v = v.narrow(1, start, len).clone();
        frames.erase(frames.begin(), frames.begin() + n);
    }
};

struct Span {
    EncodedSpan k;
    EncodedSpan v;
    std::vector<int64_t> frames;
    int64_t bytes() const { return k.bytes() + v.bytes(); }
};

// the model's [B, N, H, D] -> the codec's [B, H, N, D]
at::Tensor to_codec_layout(const at::Tensor& t) { return t.transpose(1, 2).contiguous(); }

void accumulate(RoleErrorStats& stats, const std::vector<const EncodedSpan*>& spans) {
    if (spans.empty()) return;
    const EncodedSpan& last = *spans.back();
    stats.last_stage_rel_error = last.stage_rel_error;
    stats.last_rel_error = last.rel_error;
    size_t stages = 0;
    for (const auto* s : spans) stages = std::max(stages, s->stage_rel_error.size());
    stats.mean_stage_rel_error.assign(stages, 0.0);
    std::vector<double> stage_tokens(stages, 0.0);
    double tokens = 0.0;
    for (const auto* s : spans) {
        const double n = static_cast<double>(s->tokens());
        tokens += n;
        stats.mean_rel_error += n * s->rel_error;
        for (size_t i = 0; i < s->stage_rel_error.size(); ++i) {
            stats.mean_stage_rel_error[i] += n * s->stage_rel_error[i];
            stage_tokens[i] += n;
        }
        stats.is_bound = stats.is_bound || s->rel_error_is_bound;
    }
    stats.mean_rel_error /= tokens;
    for (size_t i = 0; i < stages; ++i) stats.mean_stage_rel_error[i] /= stage_tokens[i];
}

}  // namespace

void CachePolicy::validate() const {
    codec.validate();
    QVG_CHECK(span_frames >= 1, "cache span must hold at least 1 frame, got {}", span_frames);
    QVG_CHECK(lag_frames >= 0, "cache lag must be >= 0 frames, got {}", lag_frames);
    QVG_CHECK(sink_frames >= 0, "cache sink must be >= 0 frames, got {}", sink_frames);
    QVG_CHECK(window_frames >= 0, "cache window must be >= 0 frames (0 = unlimited), got {}",
              window_frames);
}

bool bound_history(CachePolicy& policy, int64_t most) {
    QVG_CHECK(most >= 1, "a history bound must be at least 1 frame, got {}", most);
    const CachePolicy before = policy;
    if (policy.window_frames == 0 || policy.sink_frames + policy.window_frames > most) {
        policy.sink_frames = std::min(policy.sink_frames, most - 1);
        policy.window_frames = most - policy.sink_frames;
    }
    policy.span_frames =
        std::min(policy.span_frames, std::max<int64_t>(1, policy.window_frames / 4));
    if (policy.codec.compresses() && policy.span_frames > 1) {
        // Spans leave the window whole, so up to span - 1 frames beyond it stay held.
        policy.window_frames = std::max<int64_t>(
            1,
            std::min(policy.window_frames, most - policy.sink_frames - (policy.span_frames - 1)));
    }
    return policy.sink_frames != before.sink_frames ||
           policy.window_frames != before.window_frames || policy.span_frames != before.span_frames;
}

void CacheShape::validate() const {
    QVG_CHECK(num_layers >= 1 && batch >= 1 && heads >= 1 && head_dim >= 1 && tokens_per_frame >= 1,
              "cache shape needs positive layers/batch/heads/head_dim/tokens_per_frame, got "
              "{}/{}/{}/{}/{}",
              num_layers, batch, heads, head_dim, tokens_per_frame);
}

class KVCache::Layer final : public LayerHistory {
  public:
    Layer(KVCache& owner, int64_t index) : owner_(owner), index_(index) {}
    int64_t index() const { return index_; }

    KVView read() override {
        KVView view;
        const int64_t tpf = owner_.shape_.tokens_per_frame;
        const bool only_tail = sink_.frames.empty() && spans_.empty();
        const bool only_sink = tail_.frames.empty() && spans_.empty();
        if (only_tail || only_sink) {  // one raw segment: a view, no copy (unless widened)
            const RawFrames& r = only_tail ? tail_ : sink_;
            if (!r.frames.empty()) view = {r.k.to(dtype_), r.v.to(dtype_), r.frames};
            return view;
        }
        // Several segments: one output per read, filled in place (spans decode straight into
        // their slice), so no BF16 copy of the compressed history outlives the read.
        int64_t frames = static_cast<int64_t>(sink_.frames.size() + tail_.frames.size());
        for (const auto& s : spans_) frames += static_cast<int64_t>(s.frames.size());
        const CacheShape& sh = owner_.shape_;
        const auto options = at::TensorOptions().dtype(dtype_).device(device_);
        view.k = at::empty({sh.batch, frames * tpf, sh.heads, sh.head_dim}, options);
        view.v = at::empty({sh.batch, frames * tpf, sh.heads, sh.head_dim}, options);
        view.frames.reserve(static_cast<size_t>(frames));
        int64_t offset = 0;
        auto place_raw = [&](const RawFrames& r) {
            if (r.frames.empty()) return;
            const int64_t len = static_cast<int64_t>(r.frames.size()) * tpf;
            view.k.narrow(1, offset, len).copy_(r.k);
            view.v.narrow(1, offset, len).copy_(r.v);
            view.frames.insert(view.frames.end(), r.frames.begin(), r.frames.end());
            offset += len;
        };
        place_raw(sink_);
        for (const auto& s : spans_) {
            const int64_t len = static_cast<int64_t>(s.frames.size()) * tpf;
            owner_.codec_->decode_into(s.k, view.k.narrow(1, offset, len));
            owner_.codec_->decode_into(s.v, view.v.narrow(1, offset, len));
            view.frames.insert(view.frames.end(), s.frames.begin(), s.frames.end());
            offset += len;
        }
        place_raw(tail_);
        return view;
    }

    std::vector<int64_t> frames() override {
        std::vector<int64_t> f = sink_.frames;
        for (const auto& s : spans_) f.insert(f.end(), s.frames.begin(), s.frames.end());
        f.insert(f.end(), tail_.frames.begin(), tail_.frames.end());
        return f;
    }

    void read_into(const at::Tensor& k_out, const at::Tensor& v_out,
                   const RopeAngles* rope) override {
        const CacheShape& sh = owner_.shape_;
        const int64_t tpf = sh.tokens_per_frame;
        int64_t frames = static_cast<int64_t>(sink_.frames.size() + tail_.frames.size());
        for (const auto& s : spans_) frames += static_cast<int64_t>(s.frames.size());
        QVG_CHECK(k_out.dim() == 4 && k_out.sizes() == v_out.sizes() && k_out.size(0) == sh.batch &&
                      k_out.size(1) == frames * tpf && k_out.size(2) == sh.heads &&
                      k_out.size(3) == sh.head_dim,
                  "layer {}: history of {} frames needs K/V buffers [{}, {}, {}, {}], got {}",
                  index_, frames, sh.batch, frames * tpf, sh.heads, sh.head_dim,
                  fmt::join(k_out.sizes(), "x"));
        QVG_CHECK(rope == nullptr || rope->tokens() == frames * tpf,
                  "layer {}: RoPE angles for {} tokens, history has {}", index_,
                  rope ? rope->tokens() : 0, frames * tpf);
        int64_t offset = 0;
        // Each segment goes from storage to the attention buffers in one pass (rotated if asked).
        auto angles = [&](int64_t len) {
            return RopeAngles{rope->cos.narrow(0, offset, len), rope->sin.narrow(0, offset, len)};
        };
        auto place_raw = [&](const RawFrames& r) {
            if (r.frames.empty()) return;
            const int64_t len = static_cast<int64_t>(r.frames.size()) * tpf;
            if (rope != nullptr) {
                WanRope::apply_into(r.k, angles(len), k_out.narrow(1, offset, len));
            } else {
                k_out.narrow(1, offset, len).copy_(r.k);
            }
            v_out.narrow(1, offset, len).copy_(r.v);
            offset += len;
        };
        place_raw(sink_);
        for (const auto& s : spans_) {
            const int64_t len = static_cast<int64_t>(s.frames.size()) * tpf;
            if (rope != nullptr) {
                const RopeAngles a = angles(len);
                owner_.codec_->decode_into(s.k, k_out.narrow(1, offset, len), &a);
            } else {
                owner_.codec_->decode_into(s.k, k_out.narrow(1, offset, len));
            }
            owner_.codec_->decode_into(s.v, v_out.narrow(1, offset, len));
            offset += len;
        }
        place_raw(tail_);
    }

    void append(const at::Tensor& k_in, const at::Tensor& v_in, int64_t first_frame) override {
        const CacheShape& shape = owner_.shape_;
        const CachePolicy& policy = owner_.policy_;
        check_input(k_in, v_in, first_frame);
        const int64_t tpf = shape.tokens_per_frame;
        const int64_t nf = k_in.size(1) / tpf;
        const bool narrow_rows = policy.hold_bf16 && k_in.scalar_type() != at::kBFloat16;
        const at::Tensor k = narrow_rows ? k_in.to(at::kBFloat16) : k_in;
        const at::Tensor v = narrow_rows ? v_in.to(at::kBFloat16) : v_in;

        // Work on copies (tensor handles are cheap) and commit only when everything succeeded.
        RawFrames sink = sink_;
        RawFrames tail = tail_;
        std::deque<Span> spans = spans_;
        int64_t encoded = spans_encoded_;

        const int64_t into_sink =
            std::min<int64_t>(nf, policy.sink_frames - static_cast<int64_t>(sink.frames.size()));
        auto frame_range = [&](int64_t from, int64_t count) {
            std::vector<int64_t> f(static_cast<size_t>(count));
            for (int64_t i = 0; i < count; ++i) f[static_cast<size_t>(i)] = first_frame + from + i;
            return f;
        };
        if (into_sink > 0) {
            sink.append(k.narrow(1, 0, into_sink * tpf), v.narrow(1, 0, into_sink * tpf),
                        frame_range(0, into_sink));
        }
        const int64_t rest = nf - std::max<int64_t>(into_sink, 0);
        if (rest > 0) {
            const int64_t off = (nf - rest) * tpf;
            tail.append(k.narrow(1, off, rest * tpf), v.narrow(1, off, rest * tpf),
                        frame_range(nf - rest, rest));
        }

        const Codec& codec = *owner_.codec_;
        while (codec.config().compresses() &&
               static_cast<int64_t>(tail.frames.size()) >= policy.span_frames + policy.lag_frames) {
            const int64_t tokens = policy.span_frames * tpf;
            Span span;
            const Span* prev = spans.empty() ? nullptr : &spans.back();
            const uint64_t base = Rng::mix(Rng::mix(policy.seed, static_cast<uint64_t>(index_)),
                                           static_cast<uint64_t>(encoded));
            EncodeContext kc{KVRole::kKey, Rng::mix(base, 0), prev ? &prev->k : nullptr};
            EncodeContext vc{KVRole::kValue, Rng::mix(base, 1), prev ? &prev->v : nullptr};
            span.k = codec.encode(to_codec_layout(tail.k.narrow(1, 0, tokens)), kc);
            span.v = codec.encode(to_codec_layout(tail.v.narrow(1, 0, tokens)), vc);
            span.frames.assign(tail.frames.begin(), tail.frames.begin() + policy.span_frames);
            spans.push_back(std::move(span));
            ++encoded;
            tail.drop_front(policy.span_frames, tpf);
        }

        if (policy.window_frames > 0) {
            auto held = [&] {
                int64_t n = static_cast<int64_t>(tail.frames.size());
                for (const auto& s : spans) n += static_cast<int64_t>(s.frames.size());
                return n;
            };
            // Whole spans go while at least a window remains; then single raw frames.
            while (!spans.empty() && held() - static_cast<int64_t>(spans.front().frames.size()) >=
                                         policy.window_frames) {
                spans.pop_front();
            }
            if (spans.empty() && held() > policy.window_frames) {
                tail.drop_front(held() - policy.window_frames, tpf);
            }
        }

        sink_ = std::move(sink);
        tail_ = std::move(tail);
        spans_ = std::move(spans);
        spans_encoded_ = encoded;
        if (!dtype_known_) {
            dtype_ = k_in.scalar_type();
            device_ = k_in.device();
            dtype_known_ = true;
        }
        last_frame_ = first_frame + nf - 1;
    }

    void clear() {
        sink_ = {};
        tail_ = {};
        spans_.clear();
        spans_encoded_ = 0;
        dtype_known_ = false;
        last_frame_ = -1;
    }

    // Relabels sink, spans and tail 0, 1, 2, ...; returns the frames held.
    int64_t renumber() {
        int64_t next = 0;
        auto relabel = [&](std::vector<int64_t>& frames) {
            for (int64_t& f : frames) f = next++;
        };
        relabel(sink_.frames);
        for (auto& s : spans_) relabel(s.frames);
        relabel(tail_.frames);
        last_frame_ = next - 1;
        return next;
    }

    void drop_stages(int keep) {
        for (auto& s : spans_) {
            if (static_cast<int>(s.k.stages.size()) > keep) owner_.codec_->drop_stages(s.k, keep);
            if (static_cast<int>(s.v.stages.size()) > keep) owner_.codec_->drop_stages(s.v, keep);
        }
    }

    LayerCacheStats stats() const {
        const CacheShape& shape = owner_.shape_;
        LayerCacheStats st;
        st.sink_frames = static_cast<int64_t>(sink_.frames.size());
        st.tail_frames = static_cast<int64_t>(tail_.frames.size());
        st.spans = static_cast<int64_t>(spans_.size());
        st.sink_bytes = sink_.bytes();
        st.tail_bytes = tail_.bytes();
        std::vector<const EncodedSpan*> ks, vs;
        for (const auto& s : spans_) {
            st.span_frames += static_cast<int64_t>(s.frames.size());
            st.span_bytes += s.bytes();
            ks.push_back(&s.k);
            vs.push_back(&s.v);
        }
        st.frames = st.sink_frames + st.span_frames + st.tail_frames;
        st.bf16_bytes = st.frames * shape.tokens_per_frame * shape.batch * shape.heads *
                        shape.head_dim * kBf16Bytes * 2;
        accumulate(st.key, ks);
        accumulate(st.value, vs);
        return st;
    }

    int64_t first_frame_after_sink() const {
        if (!spans_.empty()) return spans_.front().frames.front();
        return tail_.frames.empty() ? -1 : tail_.frames.front();
    }

  private:
    void check_input(const at::Tensor& k, const at::Tensor& v, int64_t first_frame) const {
        const CacheShape& shape = owner_.shape_;
        QVG_CHECK(k.defined() && v.defined(), "layer {}: K or V is undefined", index_);
        QVG_CHECK(k.dim() == 4 && v.dim() == 4,
                  "layer {}: K and V must be [B, L, H, D], got {} and {} dimensions", index_,
                  k.dim(), v.dim());
        QVG_CHECK(k.sizes() == v.sizes(), "layer {}: K is {} but V is {}", index_,
                  fmt::join(k.sizes(), "x"), fmt::join(v.sizes(), "x"));
        QVG_CHECK(
            k.size(0) == shape.batch && k.size(2) == shape.heads && k.size(3) == shape.head_dim,
            "layer {}: expected K/V [{}, L, {}, {}], got {}", index_, shape.batch, shape.heads,
            shape.head_dim, fmt::join(k.sizes(), "x"));
        QVG_CHECK(k.size(1) > 0, "layer {}: empty append (0 tokens)", index_);
        QVG_CHECK(k.size(1) % shape.tokens_per_frame == 0,
                  "layer {}: {} tokens is not a whole number of {}-token frames", index_, k.size(1),
                  shape.tokens_per_frame);
        QVG_CHECK(k.is_floating_point() && k.scalar_type() == v.scalar_type(),
                  "layer {}: K/V must share one floating dtype, got {} and {}", index_,
                  c10::toString(k.scalar_type()), c10::toString(v.scalar_type()));
        QVG_CHECK(!dtype_known_ || (k.scalar_type() == dtype_ && k.device() == device_),
                  "layer {}: cache holds {} on {}, got {} on {}", index_, c10::toString(dtype_),
                  device_.str(), c10::toString(k.scalar_type()), k.device().str());
        QVG_CHECK(first_frame > last_frame_,
                  "layer {}: frame {} does not follow the last held frame {}", index_, first_frame,
                  last_frame_);
        QVG_CHECK(at::isfinite(k).all().item<bool>() && at::isfinite(v).all().item<bool>(),
                  "layer {}: K/V contain NaN or Inf", index_);
    }

    KVCache& owner_;
    int64_t index_;
    RawFrames sink_;
    RawFrames tail_;
    std::deque<Span> spans_;
    int64_t spans_encoded_ = 0;  // spans ever encoded (seeds stay distinct after eviction)
    bool dtype_known_ = false;
    at::ScalarType dtype_ = at::kBFloat16;
    at::Device device_ = at::kCPU;
    int64_t last_frame_ = -1;
};

KVCache::KVCache(const CacheShape& shape, const CachePolicy& policy)
    : shape_(shape), policy_(policy) {
    shape_.validate();
    policy_.validate();
    codec_ = Codec::create(policy_.codec);
    for (int64_t i = 0; i < shape_.num_layers; ++i)
        layers_.push_back(std::make_unique<Layer>(*this, i));
}

KVCache::~KVCache() = default;

int64_t KVCache::num_layers() const { return shape_.num_layers; }

LayerHistory& KVCache::layer(int64_t index) {
    QVG_CHECK(index >= 0 && index < shape_.num_layers, "cache layer {} out of range 0..{}", index,
              shape_.num_layers - 1);
    return *layers_[static_cast<size_t>(index)];
}

void KVCache::clear() {
    for (auto& l : layers_) l->clear();
}

int64_t KVCache::renumber_frames() {
    const std::vector<int64_t> first = layers_.front()->frames();
    for (auto& l : layers_) {
        QVG_CHECK(l->frames() == first,
                  "cache layers hold different frames (layer 0: {}, layer {}: {}); cannot renumber",
                  first.size(), l->index(), l->frames().size());
    }
    int64_t held = 0;
    for (auto& l : layers_) held = l->renumber();
    return held;
}

CacheStats KVCache::stats() const {
    CacheStats st;
    for (const auto& l : layers_) {
        st.layers.push_back(l->stats());
        st.bytes += st.layers.back().bytes();
        st.bf16_bytes += st.layers.back().bf16_bytes;
    }
    if (!layers_.empty()) {
        st.frames = st.layers.front().frames;
        st.first_frame = layers_.front()->first_frame_after_sink();
    }
    return st;
}

void KVCache::set_stages(int stages) {
    QVG_CHECK(policy_.codec.method == CodecMethod::kQvg,
              "only the qvg codec has stages (cache uses {})", policy_.codec.describe());
    CodecConfig next = policy_.codec;
    next.stages = stages;
    next.validate();
    auto codec = Codec::create(next);
    codec_ = std::move(codec);
    policy_.codec = next;
    for (auto& l : layers_) l->drop_stages(stages);
}

int64_t KVCache::projected_layer_bytes(int64_t frames) const {
    const int64_t raw_frame =
        shape_.batch * shape_.tokens_per_frame * shape_.heads * shape_.head_dim * kBf16Bytes * 2;
    const int64_t sink = std::min(frames, policy_.sink_frames);
    int64_t rest = frames - sink;
    int64_t spans = 0;
    if (policy_.codec.compresses() && rest >= policy_.span_frames + policy_.lag_frames) {
        spans = (rest - policy_.lag_frames) / policy_.span_frames;
    }
    int64_t tail = rest - spans * policy_.span_frames;
    if (policy_.window_frames > 0) {
        while (spans > 0 &&
               spans * policy_.span_frames + tail - policy_.span_frames >= policy_.window_frames) {
            --spans;
        }
        if (spans == 0) tail = std::min(tail, policy_.window_frames);
    }
    const int64_t tokens = policy_.span_frames * shape_.tokens_per_frame;
    const int64_t span_bytes =
        codec_->expected_bytes(shape_.batch, shape_.heads, tokens, shape_.head_dim, KVRole::kKey) +
        codec_->expected_bytes(shape_.batch, shape_.heads, tokens, shape_.head_dim, KVRole::kValue);
    return (sink + tail) * raw_frame + spans * span_bytes;
}

}  // namespace qvg::core
