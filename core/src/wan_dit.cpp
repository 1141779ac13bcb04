#include "qvg/core/wan_dit.h"

#include <chrono>
#include <cmath>
#include <optional>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "qvg/core/error.h"
#include "qvg/core/weights.h"

namespace qvg::core {
namespace {

using Weights = WanDiT::Weights;

void synchronize(at::Device device) {
    if (!device.is_cpu()) {
        c10::impl::getDeviceGuardImpl(device.type())->synchronizeDevice(device.index());
    }
}

double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
}

// Times a cache operation into stats (if any), synchronising the device when asked so that
// asynchronous kernels are attributed to the right side.
template <typename Fn>
auto timed(ForwardStats* stats, at::Device device, Fn&& fn) {
    if (stats == nullptr) return fn();
    if (stats->synchronize) synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    struct Add {
        ForwardStats* stats;
        at::Device device;
        std::chrono::steady_clock::time_point start;
        ~Add() {
            if (stats->synchronize) synchronize(device);
            stats->cache_ms += ms_since(start);
        }
    } add{stats, device, start};
    return fn();
}

}  // namespace

std::vector<ExpectedTensor> WanDiT::expected_tensors(const WanConfig& c) {
    const int64_t d = c.dim;
    const auto [pt, ph, pw] = c.patch_size;
    std::map<std::string, std::vector<int64_t>> s;
    s["patch_embedding.weight"] = {d, c.in_dim, pt, ph, pw};
    s["patch_embedding.bias"] = {d};
    s["text_embedding.0.weight"] = {d, c.text_dim};
    s["text_embedding.0.bias"] = {d};
    s["text_embedding.2.weight"] = {d, d};
    s["text_embedding.2.bias"] = {d};
    s["time_embedding.0.weight"] = {d, c.freq_dim};
    s["time_embedding.0.bias"] = {d};
    s["time_embedding.2.weight"] = {d, d};
    s["time_embedding.2.bias"] = {d};
    s["time_projection.1.weight"] = {6 * d, d};
    s["time_projection.1.bias"] = {6 * d};
    for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string b = fmt::format("blocks.{}.", i);
        s[b + "modulation"] = {1, 6, d};
        for (const char* attn : {"self_attn.", "cross_attn."}) {
            for (const char* lin : {"q", "k", "v", "o"}) {
                s[b + attn + lin + ".weight"] = {d, d};
                s[b + attn + lin + ".bias"] = {d};
            }
            if (c.qk_norm) {
                s[b + attn + "norm_q.weight"] = {d};
                s[b + attn + "norm_k.weight"] = {d};
            }
        }
        if (c.cross_attn_norm) {
            s[b + "norm3.weight"] = {d};
            s[b + "norm3.bias"] = {d};
        }
        s[b + "ffn.0.weight"] = {c.ffn_dim, d};
        s[b + "ffn.0.bias"] = {c.ffn_dim};
        s[b + "ffn.2.weight"] = {d, c.ffn_dim};
        s[b + "ffn.2.bias"] = {d};
    }
    s["head.modulation"] = {1, 2, d};
    s["head.head.weight"] = {c.out_dim * c.patch_volume(), d};
    s["head.head.bias"] = {c.out_dim * c.patch_volume()};
    std::vector<ExpectedTensor> out;
    out.reserve(s.size());
    for (auto& [name, shape] : s) out.push_back({name, std::move(shape)});
    return out;
}

WanDiT::WanDiT(const WanConfig& config, const Weights& weights, at::Device device,
               at::ScalarType dtype, WanMode mode)
    : config_(config),
      device_(device),
      dtype_(dtype),
      mode_(mode),
      rope_((config.validate(), config.head_dim()), device) {
    QVG_CHECK(dtype == at::kFloat || dtype == at::kBFloat16,
              "Wan DiT runs in float32 or bfloat16, not {}", c10::toString(dtype));
    QVG_CHECK(mode == WanMode::kInference || dtype == at::kFloat,
              "Wan DiT: training keeps float32 weights, not {}", c10::toString(dtype));
    // Per-frame timesteps need exactly one token frame per latent frame.
    QVG_CHECK(config.patch_size[0] == 1, "Wan DiT: temporal patch size {} is not supported (1)",
              config.patch_size[0]);
    check_weights(weights, expected_tensors(config),
                  fmt::format("Wan DiT (dim {}, {} layers)", config.dim, config.num_layers));
    for (const auto& [name, tensor] : weights) {
        QVG_CHECK(at::isFloatingType(tensor.scalar_type()),
                  "Wan DiT: weight '{}' should be floating point, found {}", name,
                  c10::toString(tensor.scalar_type()));
    }
    const bool training = mode == WanMode::kTraining;
    c10::InferenceMode guard(!training);

    // Training owns fresh leaf tensors, so that an optimizer's in-place updates never reach the
    // caller's map.
    auto leaf = [&](at::Tensor t) {
        return training ? t.detach().clone().requires_grad_(true) : t;
    };
    auto load = [&](const std::string& name) {
        return leaf(weights.at(name).to(device, dtype).contiguous());
    };
    auto load_cat = [&](const std::vector<std::string>& names) {
        std::vector<at::Tensor> parts;
        for (const auto& n : names) parts.push_back(weights.at(n));
        return leaf(at::cat(parts).to(device, dtype).contiguous());
    };
    patch_w_ =
        leaf(weights.at("patch_embedding.weight").to(device, dtype).reshape({config.dim, -1}));
    patch_b_ = load("patch_embedding.bias");
    device_ = patch_w_.device();  // with its index, e.g. cuda:0 for "cuda"
    text1_w_ = load("text_embedding.0.weight");
    text1_b_ = load("text_embedding.0.bias");
    text2_w_ = load("text_embedding.2.weight");
    text2_b_ = load("text_embedding.2.bias");
    time1_w_ = load("time_embedding.0.weight");
    time1_b_ = load("time_embedding.0.bias");
    time2_w_ = load("time_embedding.2.weight");
    time2_b_ = load("time_embedding.2.bias");
    proj_w_ = load("time_projection.1.weight");
    proj_b_ = load("time_projection.1.bias");
    blocks_.resize(static_cast<size_t>(config.num_layers));
    for (int64_t i = 0; i < config.num_layers; ++i) {
        const std::string p = fmt::format("blocks.{}.", i);
        Block& b = blocks_[static_cast<size_t>(i)];
        b.modulation = load(p + "modulation");
        // One GEMM for q, k and v instead of three.
        b.qkv_w = load_cat(
            {p + "self_attn.q.weight", p + "self_attn.k.weight", p + "self_attn.v.weight"});
        b.qkv_b =
            load_cat({p + "self_attn.q.bias", p + "self_attn.k.bias", p + "self_attn.v.bias"});
        b.o_w = load(p + "self_attn.o.weight");
        b.o_b = load(p + "self_attn.o.bias");
        if (config.qk_norm) {
            b.norm_q = load(p + "self_attn.norm_q.weight");
            b.norm_k = load(p + "self_attn.norm_k.weight");
            b.c_norm_q = load(p + "cross_attn.norm_q.weight");
            b.c_norm_k = load(p + "cross_attn.norm_k.weight");
        }
        if (config.cross_attn_norm) {
            b.norm3_w = load(p + "norm3.weight");
            b.norm3_b = load(p + "norm3.bias");
        }
        b.cq_w = load(p + "cross_attn.q.weight");
        b.cq_b = load(p + "cross_attn.q.bias");
        b.ck_w = load(p + "cross_attn.k.weight");
        b.ck_b = load(p + "cross_attn.k.bias");
        b.cv_w = load(p + "cross_attn.v.weight");
        b.cv_b = load(p + "cross_attn.v.bias");
        b.co_w = load(p + "cross_attn.o.weight");
        b.co_b = load(p + "cross_attn.o.bias");
        b.ffn1_w = load(p + "ffn.0.weight");
        b.ffn1_b = load(p + "ffn.0.bias");
        b.ffn2_w = load(p + "ffn.2.weight");
        b.ffn2_b = load(p + "ffn.2.bias");
    }
    head_modulation_ = load("head.modulation");
    head_w_ = load("head.head.weight");
    head_b_ = load("head.head.bias");

    const int64_t half = config.freq_dim / 2;
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    sinusoid_freqs_ =
        at::pow(10000.0, at::arange(half, f64).div(static_cast<double>(half)).neg()).to(device_);
}

std::vector<const at::Tensor*> WanDiT::stored() const {
    std::vector<const at::Tensor*> out = {&patch_w_, &patch_b_, &text1_w_, &text1_b_,
                                          &text2_w_, &text2_b_, &time1_w_, &time1_b_,
                                          &time2_w_, &time2_b_, &proj_w_,  &proj_b_};
    for (const Block& b : blocks_) {
        for (const at::Tensor* t :
             {&b.modulation, &b.qkv_w,   &b.qkv_b,   &b.norm_q,   &b.norm_k,   &b.o_w,
              &b.o_b,        &b.norm3_w, &b.norm3_b, &b.cq_w,     &b.cq_b,     &b.ck_w,
              &b.ck_b,       &b.cv_w,    &b.cv_b,    &b.c_norm_q, &b.c_norm_k, &b.co_w,
              &b.co_b,       &b.ffn1_w,  &b.ffn1_b,  &b.ffn2_w,   &b.ffn2_b}) {
            if (t->defined()) out.push_back(t);
        }
    }
    for (const at::Tensor* t : {&head_modulation_, &head_w_, &head_b_}) out.push_back(t);
    return out;
}

std::vector<at::Tensor> WanDiT::parameters() const {
    QVG_CHECK(mode_ == WanMode::kTraining,
              "Wan DiT: parameters() is for a model built with WanMode::kTraining");
    std::vector<at::Tensor> out;
    for (const at::Tensor* t : stored()) out.push_back(*t);
    return out;
}

WanDiT::Weights WanDiT::weights() const {
    c10::InferenceMode guard(mode_ == WanMode::kInference);
    const WanConfig& c = config_;
    const int64_t d = c.dim;
    Weights w;
    auto put = [&](const std::string& name, const at::Tensor& t) { w[name] = t.detach().clone(); };
    const auto [pt, ph, pw] = c.patch_size;
    put("patch_embedding.weight", patch_w_.view({d, c.in_dim, pt, ph, pw}));
    put("patch_embedding.bias", patch_b_);
    put("text_embedding.0.weight", text1_w_);
    put("text_embedding.0.bias", text1_b_);
    put("text_embedding.2.weight", text2_w_);
    put("text_embedding.2.bias", text2_b_);
    put("time_embedding.0.weight", time1_w_);
    put("time_embedding.0.bias", time1_b_);
    put("time_embedding.2.weight", time2_w_);
    put("time_embedding.2.bias", time2_b_);
    put("time_projection.1.weight", proj_w_);
    put("time_projection.1.bias", proj_b_);
    for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string p = fmt::format("blocks.{}.", i);
        const Block& b = blocks_[static_cast<size_t>(i)];
        put(p + "modulation", b.modulation);
        const char* qkv[] = {"q", "k", "v"};
        for (int64_t j = 0; j < 3; ++j) {
            put(p + "self_attn." + qkv[j] + ".weight", b.qkv_w.narrow(0, j * d, d));
            put(p + "self_attn." + qkv[j] + ".bias", b.qkv_b.narrow(0, j * d, d));
        }
        put(p + "self_attn.o.weight", b.o_w);
        put(p + "self_attn.o.bias", b.o_b);
        if (c.qk_norm) {
            put(p + "self_attn.norm_q.weight", b.norm_q);
            put(p + "self_attn.norm_k.weight", b.norm_k);
            put(p + "cross_attn.norm_q.weight", b.c_norm_q);
            put(p + "cross_attn.norm_k.weight", b.c_norm_k);
        }
        if (c.cross_attn_norm) {
            put(p + "norm3.weight", b.norm3_w);
            put(p + "norm3.bias", b.norm3_b);
        }
        put(p + "cross_attn.q.weight", b.cq_w);
        put(p + "cross_attn.q.bias", b.cq_b);
        put(p + "cross_attn.k.weight", b.ck_w);
        put(p + "cross_attn.k.bias", b.ck_b);
        put(p + "cross_attn.v.weight", b.cv_w);
        put(p + "cross_attn.v.bias", b.cv_b);
        put(p + "cross_attn.o.weight", b.co_w);
        put(p + "cross_attn.o.bias", b.co_b);
        put(p + "ffn.0.weight", b.ffn1_w);
        put(p + "ffn.0.bias", b.ffn1_b);
        put(p + "ffn.2.weight", b.ffn2_w);
        put(p + "ffn.2.bias", b.ffn2_b);
    }
    put("head.modulation", head_modulation_);
    put("head.head.weight", head_w_);
    put("head.head.bias", head_b_);
    return w;
}

at::Tensor WanDiT::qk_norm(const at::Tensor& x, const at::Tensor& weight) const {
    if (!weight.defined()) return x;
    // Normalised in fp32 and cast back before the weight, as upstream's WanRMSNorm.
    return at::rms_norm(x.to(at::kFloat), {config_.dim}, std::nullopt, config_.eps).to(dtype_) *
           weight;
}

TextContext WanDiT::encode_text(const at::Tensor& text_in) const {
    QVG_CHECK(text_in.defined(), "encode_text: the text embedding is undefined");
    at::Tensor text = text_in.dim() == 2 ? text_in.unsqueeze(0) : text_in;
    QVG_CHECK(text.dim() == 3 && text.size(2) == config_.text_dim && text.size(1) >= 1 &&
                  text.size(1) <= config_.text_len && text.size(0) >= 1,
              "encode_text: expected a text embedding [B, L <= {}, {}], found {}", config_.text_len,
              config_.text_dim, text_in.sizes());
    QVG_CHECK(at::isFloatingType(text.scalar_type()),
              "encode_text: expected a floating text embedding, found {}",
              c10::toString(text.scalar_type()));
    c10::InferenceMode guard(mode_ == WanMode::kInference);
    text = text.to(device_, dtype_);
    const int64_t batch = text.size(0);
    if (text.size(1) < config_.text_len) {
        text = at::constant_pad_nd(text, {0, 0, 0, config_.text_len - text.size(1)}, 0.0);
    }
    TextContext ctx;
    ctx.embedding = at::linear(at::gelu(at::linear(text, text1_w_, text1_b_), "tanh"), text2_w_,
                               text2_b_);  // [B, text_len, dim]
    const int64_t heads = config_.num_heads, hd = config_.head_dim();
    for (const Block& b : blocks_) {
        ctx.k.push_back(qk_norm(at::linear(ctx.embedding, b.ck_w, b.ck_b), b.c_norm_k)
                            .view({batch, config_.text_len, heads, hd}));
        ctx.v.push_back(
            at::linear(ctx.embedding, b.cv_w, b.cv_b).view({batch, config_.text_len, heads, hd}));
    }
    return ctx;
}

at::Tensor WanDiT::time_embedding(const at::Tensor& t) const {
    QVG_CHECK(t.defined() && t.dim() == 2, "time_embedding: expected timesteps [B, F], found {}",
              t.defined() ? fmt::format("{}", t.sizes()) : "undefined");
    c10::InferenceMode guard(mode_ == WanMode::kInference);
    at::Tensor pos = t.to(device_, at::kDouble).flatten();  // [B*F]
    at::Tensor arg = at::outer(pos, sinusoid_freqs_);       // [B*F, freq_dim/2]
    at::Tensor sinusoid = at::cat({at::cos(arg), at::sin(arg)}, 1).to(dtype_);
    at::Tensor e = at::linear(at::silu(at::linear(sinusoid, time1_w_, time1_b_)), time2_w_,
                              time2_b_);  // [B*F, dim]
    return e.view({t.size(0), t.size(1), config_.dim});
}

at::Tensor WanDiT::time_projection(const at::Tensor& e) const {
    QVG_CHECK(e.defined() && e.dim() == 3 && e.size(2) == config_.dim,
              "time_projection: expected e [B, F, {}], found {}", config_.dim,
              e.defined() ? fmt::format("{}", e.sizes()) : "undefined");
    c10::InferenceMode guard(mode_ == WanMode::kInference);
    return at::linear(at::silu(e), proj_w_, proj_b_).view({e.size(0), e.size(1), 6, config_.dim});
}

FrameAttention teacher_forcing_attention(int64_t chunks, int64_t chunk_frames, at::Device device) {
    QVG_CHECK(chunks >= 1 && chunk_frames >= 1,
              "teacher forcing: expected at least one chunk of at least one frame, found {} of {}",
              chunks, chunk_frames);
    const int64_t clean = (chunks - 1) * chunk_frames, frames = clean + chunks * chunk_frames;
    FrameAttention out;
    out.positions.reserve(static_cast<size_t>(frames));
    for (int64_t f = 0; f < clean; ++f) out.positions.push_back(f);
    for (int64_t f = 0; f < chunks * chunk_frames; ++f) out.positions.push_back(f);
    // Built from aranges on the device: no host data to copy.
    const at::Tensor index =
        at::arange(frames, at::TensorOptions().dtype(at::kLong).device(device));
    const at::Tensor noisy = index.ge(clean);
    const at::Tensor chunk = at::where(noisy, index - clean, index).div(chunk_frames, "floor");
    const at::Tensor qn = noisy.view({frames, 1}), kn = noisy.view({1, frames});
    const at::Tensor qc = chunk.view({frames, 1}), kc = chunk.view({1, frames});
    const at::Tensor clean_key = kn.logical_not().logical_and(
        at::where(qn, kc.lt(qc), kc.le(qc)));  // earlier chunks; a clean query also its own
    const at::Tensor noisy_key = kn.logical_and(qn).logical_and(kc.eq(qc));  // own chunk only
    out.mask = clean_key.logical_or(noisy_key);
    return out;
}

void WanDiT::check_inputs(const at::Tensor& x_in, const at::Tensor& t, const TextContext& ctx,
                          const ForwardExtras& extras) const {
    const WanConfig& c = config_;
    const auto [pt, ph, pw] = c.patch_size;
    QVG_CHECK(x_in.defined() && x_in.dim() == 5,
              "Wan DiT: expected latents [B, F, {}, H, W], found {}", c.in_dim,
              x_in.defined() ? fmt::format("{}", x_in.sizes()) : "undefined");
    const int64_t batch = x_in.size(0), frames = x_in.size(1);
    const int64_t height = x_in.size(3), width = x_in.size(4);
    QVG_CHECK(batch >= 1 && frames >= 1 && x_in.size(2) == c.in_dim && height % ph == 0 &&
                  width % pw == 0 && height > 0 && width > 0,
              "Wan DiT: expected latents [B, F, {}, H, W] with H a multiple of {} and W of {}, "
              "found {}",
              c.in_dim, ph, pw, x_in.sizes());
    QVG_CHECK(at::isFloatingType(x_in.scalar_type()),
              "Wan DiT: expected floating latents, found {}", c10::toString(x_in.scalar_type()));
    QVG_CHECK(x_in.device() == device_, "Wan DiT: latents on {}, model on {}", x_in.device().str(),
              device_.str());
    QVG_CHECK(t.defined() && t.dim() == 2 && t.size(0) == batch && t.size(1) == frames,
              "Wan DiT: expected timesteps [{}, {}], found {}", batch, frames,
              t.defined() ? fmt::format("{}", t.sizes()) : "undefined");
    QVG_CHECK(static_cast<int64_t>(ctx.k.size()) == c.num_layers &&
                  static_cast<int64_t>(ctx.v.size()) == c.num_layers && ctx.batch() == batch &&
                  ctx.embedding.size(2) == c.dim && ctx.embedding.device() == device_,
              "Wan DiT: the text context does not fit this call (expected {} layers, batch {}, "
              "width {} on {}; found {} layers, batch {}); build it with this model's "
              "encode_text",
              c.num_layers, batch, c.dim, device_.str(), ctx.k.size(), ctx.batch());
    if (extras.frame_embedding.defined()) {
        QVG_CHECK(extras.frame_embedding.sizes() == at::IntArrayRef({batch, frames, c.dim}),
                  "Wan DiT: expected a frame embedding [{}, {}, {}], found {}", batch, frames,
                  c.dim, extras.frame_embedding.sizes());
    }
}

at::Tensor WanDiT::forward(const at::Tensor& x_in, const at::Tensor& t, const TextContext& ctx,
                           History* history, int64_t first_frame, CacheWrite mode,
                           const ForwardExtras& extras) const {
    const WanConfig& c = config_;
    // ---- validation: everything a caller can get wrong, before any work or state change ----
    check_inputs(x_in, t, ctx, extras);
    const int64_t batch = x_in.size(0), frames = x_in.size(1);
    QVG_CHECK(first_frame >= 0 && first_frame + frames <= rope_.max_positions(),
              "Wan DiT: frames {}..{} are outside the RoPE table of {} frames", first_frame,
              first_frame + frames - 1, rope_.max_positions());
    QVG_CHECK(mode == CacheWrite::kAttendOnly || history != nullptr,
              "Wan DiT: a committing call needs a history");
    QVG_CHECK(history == nullptr || history->num_layers() == c.num_layers,
              "Wan DiT: history has {} layers, the model {}", history ? history->num_layers() : 0,
              c.num_layers);

    c10::InferenceMode guard(mode_ == WanMode::kInference);
    const int64_t rows = x_in.size(3) / c.patch_size[1], cols = x_in.size(4) / c.patch_size[2];
    const int64_t frame_tokens = rows * cols, tokens = frames * frame_tokens;
    const int64_t heads = c.num_heads, hd = c.head_dim();

    const RopeAngles own_angles = rope_.angles(first_frame, frames, rows, cols);
    std::vector<int64_t> cached_frames;  // frames of the last history read, to reuse its angles
    RopeAngles history_angles;
    std::vector<std::pair<at::Tensor, at::Tensor>> pending;  // clean K/V to commit per layer
    if (mode == CacheWrite::kCommit) pending.reserve(blocks_.size());

    // Self-attention over [history ++ this block].
    auto attend = [&](int64_t layer, const at::Tensor& h, const at::Tensor& q, const at::Tensor& k,
                      const at::Tensor& v) {
        LayerHistory* past = history != nullptr ? &history->layer(layer) : nullptr;
        std::vector<int64_t> past_frames;
        if (past != nullptr) {
            past_frames = past->frames();
            QVG_CHECK(past_frames.empty() || past_frames.back() < first_frame,
                      "Wan DiT: layer {} history holds frame {}, not before this call's first "
                      "frame {}",
                      layer, past_frames.back(), first_frame);
            if (!past_frames.empty() && past_frames != cached_frames) {
                history_angles = rope_.angles(past_frames, rows, cols);
                cached_frames = past_frames;
            }
        }
        const int64_t past_tokens = static_cast<int64_t>(past_frames.size()) * frame_tokens;

        SelfAttentionOut out;
        if (extras.branch != nullptr) {
            out.extra =
                extras.branch->forward({layer, h, q, k, v, first_frame, frames, rows, cols, mode});
        }

        // Keys are rotated into one [history ++ own] buffer: the history by its frames' absolute
        // indices, this block by first_frame.. . Values are gathered alongside.
        at::Tensor q_rot = WanRope::apply(q, own_angles);
        at::Tensor k_all = at::empty({batch, past_tokens + tokens, heads, hd}, q.options());
        at::Tensor v_all = at::empty_like(k_all);
        if (past_tokens > 0) {
            // The history writes itself into the buffers, keys rotated by their frames' absolute
            // indices (a compressed cache decodes and rotates in one pass).
            timed(extras.stats, device_, [&] {
                past->read_into(k_all.narrow(1, 0, past_tokens), v_all.narrow(1, 0, past_tokens),
                                &history_angles);
            });
        }
        WanRope::apply_into(k, own_angles, k_all.narrow(1, past_tokens, tokens));
        v_all.narrow(1, past_tokens, tokens).copy_(v);

        out.attn = at::scaled_dot_product_attention(
            q_rot.transpose(1, 2), k_all.transpose(1, 2), v_all.transpose(1, 2), {}, 0.0,
            /*is_causal=*/false, 1.0 / std::sqrt(static_cast<double>(hd)));  // [B, H, L, D]
        if (mode == CacheWrite::kCommit) pending.emplace_back(k, v.contiguous());
        return out;
    };
    at::Tensor flow = run(x_in, t, ctx, extras, attend);

    if (mode == CacheWrite::kCommit) {
        // Committed only now, so that an error anywhere above leaves the history unchanged.
        timed(extras.stats, device_, [&] {
            for (int64_t layer = 0; layer < c.num_layers; ++layer) {
                auto& [k, v] = pending[static_cast<size_t>(layer)];
                history->layer(layer).append(k, v, first_frame);
            }
            return 0;
        });
    }
    return flow;
}

at::Tensor WanDiT::forward_masked(const at::Tensor& x_in, const at::Tensor& t,
                                  const TextContext& ctx, const FrameAttention& attention,
                                  const ForwardExtras& extras) const {
    const WanConfig& c = config_;
    check_inputs(x_in, t, ctx, extras);
    const int64_t frames = x_in.size(1);
    QVG_CHECK(static_cast<int64_t>(attention.positions.size()) == frames,
              "Wan DiT: {} RoPE positions for {} frames", attention.positions.size(), frames);
    QVG_CHECK(attention.mask.defined() && attention.mask.scalar_type() == at::kBool &&
                  attention.mask.sizes() == at::IntArrayRef({frames, frames}) &&
                  attention.mask.device() == device_,
              "Wan DiT: expected a bool frame mask [{}, {}] on {}, found {}", frames, frames,
              device_.str(),
              attention.mask.defined()
                  ? fmt::format("{} {} on {}", c10::toString(attention.mask.scalar_type()),
                                attention.mask.sizes(), attention.mask.device().str())
                  : "undefined");
    QVG_CHECK(extras.branch == nullptr,
              "Wan DiT: forward_masked does not support extra attention branches");

    c10::InferenceMode guard(mode_ == WanMode::kInference);
    const int64_t rows = x_in.size(3) / c.patch_size[1], cols = x_in.size(4) / c.patch_size[2];
    const int64_t frame_tokens = rows * cols, tokens = frames * frame_tokens;
    const int64_t hd = c.head_dim();

    // RoPE angles run by run of consecutive positions (slices of the tables: gathering by an
    // index list would copy it to the device and stall the host).
    std::vector<at::Tensor> cos, sin;
    const std::vector<int64_t>& pos = attention.positions;
    for (size_t first = 0; first < pos.size();) {
        size_t end = first + 1;
        while (end < pos.size() && pos[end] == pos[end - 1] + 1) ++end;
        const RopeAngles run_angles =
            rope_.angles(pos[first], static_cast<int64_t>(end - first), rows, cols);
        cos.push_back(run_angles.cos);
        sin.push_back(run_angles.sin);
        first = end;
    }
    const RopeAngles angles{at::cat(cos), at::cat(sin)};
    // Frame mask -> token mask [L, L], broadcast over batch and heads by the attention.
    const at::Tensor token_mask = attention.mask.view({frames, 1, frames, 1})
                                      .expand({frames, frame_tokens, frames, frame_tokens})
                                      .reshape({tokens, tokens});

    auto attend = [&](int64_t, const at::Tensor&, const at::Tensor& q, const at::Tensor& k,
                      const at::Tensor& v) {
        SelfAttentionOut out;
        out.attn = at::scaled_dot_product_attention(
            WanRope::apply(q, angles).transpose(1, 2), WanRope::apply(k, angles).transpose(1, 2),
            v.transpose(1, 2), token_mask, 0.0, /*is_causal=*/false,
            1.0 / std::sqrt(static_cast<double>(hd)));  // [B, H, L, D]
        return out;
    };
    return run(x_in, t, ctx, extras, attend);
}

at::Tensor WanDiT::run(const at::Tensor& x_in, const at::Tensor& t, const TextContext& ctx,
                       const ForwardExtras& extras, const SelfAttention& attend) const {
    const WanConfig& c = config_;
    const auto [pt, ph, pw] = c.patch_size;
    const int64_t batch = x_in.size(0), frames = x_in.size(1);
    const int64_t height = x_in.size(3), width = x_in.size(4);
    const bool training = mode_ == WanMode::kTraining;
    c10::InferenceMode guard(!training);
    const int64_t rows = height / ph, cols = width / pw;
    const int64_t frame_tokens = rows * cols, tokens = frames * frame_tokens;
    const int64_t heads = c.num_heads, hd = c.head_dim(), dim = c.dim;
    auto probe = [&](std::string_view stage, const at::Tensor& value) {
        if (extras.probe) extras.probe(stage, value.clone());  // x is updated in place later
    };

    // Patch embedding: Conv3d with kernel = stride = patch, written as one GEMM over the
    // patches (tokens in frame, row, column order; features in the conv weight's (c, t, h, w)).
    at::Tensor patches = x_in.to(dtype_)
                             .view({batch, frames, c.in_dim, rows, ph, cols, pw})
                             .permute({0, 1, 3, 5, 2, 4, 6})
                             .reshape({batch, tokens, c.in_dim * ph * pw});
    at::Tensor x = at::linear(patches, patch_w_, patch_b_);  // [B, L, dim]
    probe("patch_embedding", x);
    at::Tensor x4 = x.view({batch, frames, frame_tokens, dim});  // per-frame view of x
    // x += y * gate (per frame). Training keeps every earlier x4 intact for autograd.
    auto add_residual = [&](const at::Tensor& y, const at::Tensor& gate) {
        at::Tensor y4 = y.view({batch, frames, frame_tokens, dim});
        if (training) {
            x4 = gate.defined() ? at::addcmul(x4, y4, gate) : x4 + y4;
            x = x4.view({batch, tokens, dim});
        } else if (gate.defined()) {
            x4.addcmul_(y4, gate);
        } else {
            x4.add_(y4);
        }
    };

    at::Tensor e = time_embedding(t);  // [B, F, dim]
    if (extras.frame_embedding.defined()) e = e + extras.frame_embedding.to(device_, dtype_);
    probe("time_embedding", e);
    at::Tensor e0 = time_projection(e);  // [B, F, 6, dim]
    probe("time_projection", e0);

    for (int64_t layer = 0; layer < c.num_layers; ++layer) {
        const Block& b = blocks_[static_cast<size_t>(layer)];
        at::Tensor mod = b.modulation.unsqueeze(1) + e0;                        // [B, F, 6, dim]
        auto chunk = [&](int64_t i) { return mod.select(2, i).unsqueeze(2); };  // [B, F, 1, dim]
        at::Tensor shift_sa = chunk(0), scale_sa = chunk(1) + 1, gate_sa = chunk(2);
        at::Tensor shift_ffn = chunk(3), scale_ffn = chunk(4) + 1, gate_ffn = chunk(5);

        // ---- self-attention ----
        at::Tensor h = at::addcmul(shift_sa, at::layer_norm(x4, {dim}, {}, {}, c.eps), scale_sa)
                           .view({batch, tokens, dim});
        at::Tensor qkv = at::linear(h, b.qkv_w, b.qkv_b);  // [B, L, 3*dim]
        at::Tensor q = qk_norm(qkv.narrow(2, 0, dim), b.norm_q).view({batch, tokens, heads, hd});
        at::Tensor k = qk_norm(qkv.narrow(2, dim, dim), b.norm_k).view({batch, tokens, heads, hd});
        at::Tensor v = qkv.narrow(2, 2 * dim, dim).view({batch, tokens, heads, hd});
        SelfAttentionOut sa = attend(layer, h, q, k, v);
        at::Tensor y =
            at::linear(sa.attn.transpose(1, 2).reshape({batch, tokens, dim}), b.o_w, b.o_b);
        if (sa.extra.defined()) y = y + sa.extra;
        probe(fmt::format("block{}_self_attn", layer), y);
        add_residual(y, gate_sa);

        // ---- cross-attention against the per-prompt text K/V (no gate) ----
        at::Tensor hn =
            b.norm3_w.defined() ? at::layer_norm(x, {dim}, b.norm3_w, b.norm3_b, c.eps) : x;
        at::Tensor cq =
            qk_norm(at::linear(hn, b.cq_w, b.cq_b), b.c_norm_q).view({batch, tokens, heads, hd});
        at::Tensor cattn = at::scaled_dot_product_attention(
            cq.transpose(1, 2), ctx.k[static_cast<size_t>(layer)].transpose(1, 2),
            ctx.v[static_cast<size_t>(layer)].transpose(1, 2), {}, 0.0, false,
            1.0 / std::sqrt(static_cast<double>(hd)));
        at::Tensor cy =
            at::linear(cattn.transpose(1, 2).reshape({batch, tokens, dim}), b.co_w, b.co_b);
        probe(fmt::format("block{}_cross_attn", layer), cy);
        add_residual(cy, at::Tensor());

        // ---- feed-forward ----
        at::Tensor h2 = at::addcmul(shift_ffn, at::layer_norm(x4, {dim}, {}, {}, c.eps), scale_ffn)
                            .view({batch, tokens, dim});
        at::Tensor f =
            at::linear(at::gelu(at::linear(h2, b.ffn1_w, b.ffn1_b), "tanh"), b.ffn2_w, b.ffn2_b);
        probe(fmt::format("block{}_ffn", layer), f);
        add_residual(f, gate_ffn);
        probe(fmt::format("block{}", layer), x);
    }

    // ---- head: modulated by e (not e0), then unpatchify ----
    at::Tensor hm = head_modulation_.unsqueeze(1) + e.unsqueeze(2);  // [B, F, 2, dim]
    at::Tensor head_in =
        at::addcmul(hm.select(2, 0).unsqueeze(2), at::layer_norm(x4, {dim}, {}, {}, c.eps),
                    hm.select(2, 1).unsqueeze(2) + 1);
    at::Tensor out = at::linear(head_in, head_w_, head_b_);  // [B, F, rows*cols, ph*pw*out]
    probe("head", out);
    // Feature k of a token is (h_off, w_off, channel) = (k / (pw*C), (k / C) % pw, k % C).
    return out.view({batch, frames, rows, cols, ph, pw, c.out_dim})
        .permute({0, 1, 6, 2, 4, 3, 5})
        .reshape({batch, frames, c.out_dim, height, width});
}

}  // namespace qvg::core
