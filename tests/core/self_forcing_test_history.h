#pragma once
// A plain in-memory History for the DiT and Self-Forcing tests: stores K/V in a chosen dtype
// (fp32 or BF16), decodes to the model dtype on read, and optionally keeps only a sink of the
// first frames plus a window of the latest ones. It logs every append and every read so that the
// tests can check which frames each call committed and saw. Product code uses qvg::core::KVCache.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "qvg/core/error.h"
#include "qvg/core/kv_history.h"

namespace qvg::test {

struct TestCachePolicy {
    int64_t window_frames = -1;  // latest frames kept beyond the sink; -1 = keep everything
    int64_t sink_frames = 0;     // first frames always kept
};

class TestLayerHistory final : public core::LayerHistory {
  public:
    TestLayerHistory(int64_t tokens_per_frame, at::ScalarType storage, at::ScalarType model,
                     TestCachePolicy policy)
        : tokens_per_frame_(tokens_per_frame), storage_(storage), model_(model), policy_(policy) {}

    core::KVView read() override {
        if (frames_.empty()) return {};
        return {k_.to(model_), v_.to(model_), frames_};
    }

    // The model asks for the held frames once per layer and call (then reads them into its
    // attention buffers when there are any): that query is what the protocol tests log.
    std::vector<int64_t> frames() override {
        read_log.push_back(frames_);
        return frames_;
    }

    void append(const at::Tensor& k, const at::Tensor& v, int64_t first_frame) override {
        QVG_CHECK(k.dim() == 4 && v.sizes() == k.sizes() && k.size(1) > 0 &&
                      k.size(1) % tokens_per_frame_ == 0,
                  "test history: expected k, v [B, F * {}, H, D], found {} and {}",
                  tokens_per_frame_, k.sizes(), v.sizes());
        QVG_CHECK(frames_.empty() || first_frame > frames_.back(),
                  "test history: frame {} is not after the last held frame {}", first_frame,
                  frames_.back());
        QVG_CHECK(!k_.defined() || (k.size(0) == k_.size(0) && k.size(2) == k_.size(2) &&
                                    k.size(3) == k_.size(3)),
                  "test history: k {} does not fit the held {}", k.sizes(), k_.sizes());
        const int64_t count = k.size(1) / tokens_per_frame_;
        append_log.emplace_back(first_frame, count);
        at::Tensor ks = k.to(storage_), vs = v.to(storage_);
        k_ = k_.defined() ? at::cat({k_, ks}, 1) : ks.clone();
        v_ = v_.defined() ? at::cat({v_, vs}, 1) : vs.clone();
        for (int64_t f = 0; f < count; ++f) frames_.push_back(first_frame + f);
        evict();
    }

    void clear() {
        k_.reset();
        v_.reset();
        frames_.clear();
    }

    const std::vector<int64_t>& frames() const { return frames_; }
    const at::Tensor& stored_k() const { return k_; }  // [B, L, H, D] pre-RoPE, storage dtype
    const at::Tensor& stored_v() const { return v_; }

    std::vector<std::pair<int64_t, int64_t>> append_log;  // (first_frame, frame count)
    std::vector<std::vector<int64_t>> read_log;           // frames reported to each model call

  private:
    void evict() {
        const auto held = static_cast<int64_t>(frames_.size());
        if (policy_.window_frames < 0 || held <= policy_.sink_frames + policy_.window_frames) {
            return;
        }
        const int64_t drop = held - policy_.sink_frames - policy_.window_frames;
        const int64_t t = tokens_per_frame_;
        auto keep = [&](const at::Tensor& x) {
            return at::cat(
                {x.narrow(1, 0, policy_.sink_frames * t),
                 x.narrow(1, (policy_.sink_frames + drop) * t, policy_.window_frames * t)},
                1);
        };
        k_ = keep(k_);
        v_ = keep(v_);
        frames_.erase(frames_.begin() + policy_.sink_frames,
                      frames_.begin() + policy_.sink_frames + drop);
    }

    int64_t tokens_per_frame_;
    at::ScalarType storage_;
    at::ScalarType model_;
    TestCachePolicy policy_;
    at::Tensor k_;  // [B, L, H, D]
    at::Tensor v_;  // [B, L, H, D]
    std::vector<int64_t> frames_;
};

class TestHistory final : public core::History {
  public:
    TestHistory(int64_t num_layers, int64_t tokens_per_frame, at::ScalarType storage,
                at::ScalarType model, TestCachePolicy policy = {}) {
        for (int64_t i = 0; i < num_layers; ++i) {
            layers_.emplace_back(tokens_per_frame, storage, model, policy);
        }
    }
    int64_t num_layers() const override { return static_cast<int64_t>(layers_.size()); }
    TestLayerHistory& layer(int64_t index) override {
        QVG_CHECK(index >= 0 && index < num_layers(), "test history: no layer {}", index);
        return layers_[static_cast<size_t>(index)];
    }
    void clear() override {
        for (auto& l : layers_) l.clear();
    }

  private:
    std::vector<TestLayerHistory> layers_;
};

}  // namespace qvg::test
