// qvg codec: encode one K or V tensor with a codec and report bytes, error and time; without
// --input, compare every codec on built-in video-like tokens.

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "qvg/core/codec.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/synthetic.h"
#include "table.h"

namespace qvg::cli {
namespace {

using core::CodecConfig;
using core::CodecMethod;

struct CodecOptions {
    std::string input;
    std::string tensor;
    std::string method = "qvg";
    std::optional<int> bits, group, stages, centroids, iterations;
    bool asymmetric = false;
    bool channel_keys = false;
    bool clip_search = false;
    int codebook_bits = 16;
    bool no_warm_start = false;
    uint64_t seed = 0;
    std::string role = "key";
    bool json = false;
    std::string dump;
    std::string device = "auto";
    int repeat = 1;
    // Built-in generator.
    int64_t frames = 24;
    int64_t heads = 2;
};

struct Measurement {
    std::string label;   // table label, e.g. "QVG INT2 G64 S1"
    std::string method;  // JSON method name
    int bits = 0;
    int64_t bytes = 0;
    double ratio = 0;
    double rel_error = 0;
    double encode_ms = 0;
    double decode_ms = 0;
    std::vector<double> stage_rel_error;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double rel_l2(const at::Tensor& x, const at::Tensor& y) {
    const double nx = x.to(at::kDouble).norm().item<double>();
    return nx > 0 ? (x.to(at::kDouble) - y.to(at::kDouble)).norm().item<double>() / nx : 0.0;
}

int storage_bits(const CodecConfig& c) {
    switch (c.method) {
        case CodecMethod::kBf16:
            return 16;
        case CodecMethod::kFp8:
            return 8;
        default:
            return c.bits;
    }
}

// Encodes `repeat` times (median time), decodes `repeat` times, measures against x.
Measurement measure(const at::Tensor& x, const CodecConfig& config, core::KVRole role, int repeat,
                    core::EncodedSpan* keep = nullptr) {
    auto codec = core::Codec::create(config);
    const c10::Device device = x.device();
    std::vector<double> enc, dec;
    core::EncodedSpan span;
    at::Tensor recon;
    for (int i = 0; i < std::max(1, repeat); ++i) {
        core::synchronize(device);
        auto t0 = std::chrono::steady_clock::now();
        span = codec->encode(x, {role, 0, nullptr});
        core::synchronize(device);
        enc.push_back(ms_since(t0));
        t0 = std::chrono::steady_clock::now();
        recon = codec->decode(span);
        core::synchronize(device);
        dec.push_back(ms_since(t0));
    }
    Measurement m;
    m.label = config.describe();
    m.method = core::codec_method_name(config.method);
    m.bits = storage_bits(config);
    m.bytes = span.bytes();
    m.ratio = static_cast<double>(x.numel() * 2) / static_cast<double>(m.bytes);
    m.rel_error = rel_l2(x, recon);
    m.encode_ms = median(enc);
    m.decode_ms = median(dec);
    m.stage_rel_error = span.stage_rel_error;
    if (keep != nullptr) *keep = std::move(span);
    return m;
}

// Memory-budget baselines: keep whole frames in BF16 within `budget` bytes; dropped tokens are
// invisible to attention, so they count as zeros in the error.
Measurement truncation(const at::Tensor& x, int64_t budget, int64_t tokens_per_frame, bool sink) {
    const int64_t n = x.size(2);
    const int64_t frame_bytes = x.size(0) * x.size(1) * tokens_per_frame * x.size(3) * 2;
    const int64_t frames = std::min<int64_t>(budget / frame_bytes, n / tokens_per_frame);
    at::Tensor kept = at::zeros_like(x);
    int64_t from_start = sink ? std::min<int64_t>(1, frames) : 0;
    const int64_t from_end = frames - from_start;
    if (from_start > 0) kept.narrow(2, 0, tokens_per_frame).copy_(x.narrow(2, 0, tokens_per_frame));
    if (from_end > 0) {
        kept.narrow(2, n - from_end * tokens_per_frame, from_end * tokens_per_frame)
            .copy_(x.narrow(2, n - from_end * tokens_per_frame, from_end * tokens_per_frame));
    }
    Measurement m;
    m.label = fmt::format("{} ({} of {} frames)", sink ? "sink+window BF16" : "window BF16", frames,
                          n / tokens_per_frame);
    m.method = sink ? "sink-window" : "window";
    m.bits = 16;
    m.bytes = frames * frame_bytes;
    m.ratio = m.bytes > 0 ? static_cast<double>(x.numel() * 2) / static_cast<double>(m.bytes) : 0.0;
    m.rel_error = rel_l2(x, kept);
    return m;
}

// The first ATen calls pay for lazy initialisation (thread pools, kernels); keep that out of
// the timings.
void warm_up(c10::Device device) {
    core::SyntheticTokens spec;
    spec.frames = 1;
    spec.heads = 1;
    CodecConfig c = core::default_codec_config(CodecMethod::kQvg);
    c.centroids = 16;
    auto codec = core::Codec::create(c);
    codec->decode(codec->encode(core::synthetic_tokens(spec).to(device)));
    core::synchronize(device);
}

CodecConfig config_from(const CodecOptions& o) {
    CodecConfig c = core::default_codec_config(core::parse_codec_method(o.method));
    if (o.bits) c.bits = *o.bits;
    if (o.group) c.group = *o.group;
    if (o.stages) c.stages = *o.stages;
    if (o.centroids) c.centroids = *o.centroids;
    if (o.iterations) c.iterations = *o.iterations;
    if (o.asymmetric) c.asymmetric = true;
    if (o.channel_keys) c.channel_keys = true;
    if (o.clip_search) c.clip_search = true;
    c.codebook_bits = o.codebook_bits;
    c.warm_start = !o.no_warm_start;
    c.seed = o.seed;
    c.validate();
    return c;
}

void print_table(const std::vector<Measurement>& rows, const std::string& title) {
    Table t({"method", "bits", "bytes", "ratio vs BF16", "rel L2 error", "encode ms", "decode ms"});
    for (const auto& m : rows) {
        t.add({m.label, std::to_string(m.bits), std::to_string(m.bytes),
               fmt::format("{:.2f}x", m.ratio), fmt::format("{:.4f}", m.rel_error),
               fmt::format("{:.2f}", m.encode_ms), fmt::format("{:.2f}", m.decode_ms)});
    }
    std::cout << title << "\n" << t.str();
}

nlohmann::json to_json(const Measurement& m) {
    return {{"method", m.method},       {"bits", m.bits},
            {"bytes", m.bytes},         {"ratio", m.ratio},
            {"rel_error", m.rel_error}, {"encode_ms", m.encode_ms},
            {"decode_ms", m.decode_ms}, {"stage_rel_error", m.stage_rel_error}};
}

void dump_span(const std::string& path, const core::EncodedSpan& span, const at::Tensor& recon) {
    std::vector<std::pair<std::string, at::Tensor>> out = {{"recon", recon}};
    if (span.quant.codes.defined()) out.emplace_back("codes", span.quant.codes);
    if (span.quant.scales.defined()) out.emplace_back("scales", span.quant.scales);
    if (span.quant.zeros.defined()) out.emplace_back("zeros", span.quant.zeros);
    if (span.payload.defined()) out.emplace_back("payload", span.payload);
    if (span.token_scales.defined()) out.emplace_back("token_scales", span.token_scales);
    for (size_t s = 0; s < span.stages.size(); ++s) {
        out.emplace_back(fmt::format("ids_{}", s), span.stages[s].ids);
        out.emplace_back(fmt::format("centroids_{}", s), span.stages[s].centroids);
    }
    core::save_safetensors(path, out, {{"codec", span.config.describe()}});
}

int run_on_input(const CodecOptions& o, c10::Device device) {
    auto file = core::SafetensorsFile::open(o.input);
    std::string name = o.tensor;
    if (name.empty()) {
        QVG_CHECK(file->tensors().size() == 1, "{} holds {} tensors; name one with --tensor",
                  o.input, file->tensors().size());
        name = file->tensors().front().name;
    }
    at::Tensor x = file->tensor(name).to(device);
    QVG_CHECK(x.dim() == 4, "tensor '{}' must be [B, H, N, D], got shape {}", name,
              fmt::join(x.sizes(), "x"));
    const CodecConfig config = config_from(o);
    const core::KVRole role = o.role == "value" ? core::KVRole::kValue : core::KVRole::kKey;
    core::EncodedSpan span;
    Measurement m = measure(x, config, role, o.repeat, &span);
    if (!o.dump.empty()) dump_span(o.dump, span, core::Codec::create(config)->decode(span));
    if (o.json) {
        std::cout << to_json(m).dump() << "\n";
    } else {
        print_table({m}, fmt::format("{} '{}' [{}] on {}", o.input, name,
                                     fmt::join(x.sizes(), ", "), device.str()));
        if (!m.stage_rel_error.empty()) {
            std::cout << "relative error after each smoothing stage: "
                      << fmt::format("{:.4f}", fmt::join(m.stage_rel_error, ", ")) << "\n";
        }
    }
    return 0;
}

int run_builtin(const CodecOptions& o, c10::Device device) {
    core::SyntheticTokens spec;
    spec.frames = o.frames;
    spec.heads = o.heads;
    spec.seed = o.seed;
    spec.role = o.role == "value" ? core::KVRole::kValue : core::KVRole::kKey;
    const at::Tensor x = core::synthetic_tokens(spec).to(device);
    const int64_t tpf = spec.height * spec.width;

    std::vector<CodecConfig> configs;
    for (CodecMethod m : {CodecMethod::kBf16, CodecMethod::kFp8, CodecMethod::kRtn,
                          CodecMethod::kKivi, CodecMethod::kQuarot, CodecMethod::kQvg}) {
        configs.push_back(core::default_codec_config(m));
    }
    CodecConfig pro = core::default_codec_config(CodecMethod::kQvg);
    pro.group = 16;
    pro.stages = 4;
    configs.push_back(pro);
    CodecConfig qvg4 = core::default_codec_config(CodecMethod::kQvg);
    qvg4.bits = 4;
    configs.push_back(qvg4);

    std::vector<Measurement> rows;
    int64_t qvg_bytes = 0;
    for (auto& c : configs) {
        c.seed = o.seed;
        rows.push_back(measure(x, c, spec.role, o.repeat));
        if (c.method == CodecMethod::kQvg && c.stages == 1 && c.bits == 2)
            qvg_bytes = rows.back().bytes;
    }
    rows.push_back(truncation(x, qvg_bytes, tpf, false));
    rows.push_back(truncation(x, qvg_bytes, tpf, true));
    if (o.json) {
        nlohmann::json all = nlohmann::json::array();
        for (const auto& m : rows) all.push_back(to_json(m));
        std::cout << all.dump(2) << "\n";
        return 0;
    }
    print_table(
        rows, fmt::format("built-in video-like {} tokens [1, {}, {}, {}] ({} frames of {}x{}), {}",
                          o.role == "value" ? "value" : "key", spec.heads, x.size(2), spec.head_dim,
                          spec.frames, spec.height, spec.width, device.str()));
    std::cout << "window rows keep whole BF16 frames within QVG INT2 G64 S1's bytes; dropped "
                 "tokens count "
                 "as zeros.\n";
    return 0;
}

const Registrar kRegister([](CLI::App& app) {
    auto opts = std::make_shared<CodecOptions>();
    CLI::App* sub =
        app.add_subcommand("codec", "Encode a K/V tensor and report bytes, error and time");
    sub->add_option("--input", opts->input, "safetensors file holding a [B, H, N, D] tensor")
        ->check(CLI::ExistingFile);
    sub->add_option("--tensor", opts->tensor, "tensor name in --input (default: the only one)");
    sub->add_option("--method", opts->method, "qvg, rtn, kivi, quarot, fp8 or bf16")
        ->check(CLI::IsMember({"qvg", "rtn", "kivi", "quarot", "fp8", "bf16"}));
    sub->add_option("--bits", opts->bits, "2 or 4")->check(CLI::IsMember({2, 4}));
    sub->add_option("--group", opts->group, "channels per FP8 scale")
        ->check(CLI::IsMember({16, 32, 64, 128}));
    sub->add_option("--stages", opts->stages, "PRQ stages (qvg)")->check(CLI::Range(0, 4));
    sub->add_option("--centroids", opts->centroids, "centroids per stage")
        ->check(CLI::Range(1, 256));
    sub->add_option("--iters", opts->iterations, "k-means iterations")->check(CLI::Range(0, 1000));
    sub->add_flag("--asymmetric", opts->asymmetric, "scale and zero point per group");
    sub->add_flag("--channel-keys", opts->channel_keys,
                  "keys' last residual per channel, in groups of G tokens (qvg, rtn; with "
                  "--role key)");
    sub->add_flag("--clip", opts->clip_search,
                  "search each group's range for the least error (rtn, qvg, kivi, quarot)");
    sub->add_option("--codebook-bits", opts->codebook_bits,
                    "bits per codebook value: 16 (BF16), 8 (FP8: twice the centroids in the same "
                    "bytes) or 4 (INT4 per centroid) (qvg)")
        ->check(CLI::IsMember({16, 8, 4}));
    sub->add_flag("--no-warm-start", opts->no_warm_start,
                  "always start k-means from random tokens");
    sub->add_option("--seed", opts->seed, "k-means / generator seed");
    sub->add_option("--role", opts->role, "key or value (KIVI quantizes keys per channel)")
        ->check(CLI::IsMember({"key", "value"}));
    sub->add_flag("--json", opts->json, "print JSON instead of a table");
    sub->add_option("--dump", opts->dump,
                    "write recon, codes, scales, ids_<s>, centroids_<s> here");
    sub->add_option("--device", opts->device, "auto, cpu or cuda");
    sub->add_option("--repeat", opts->repeat, "timed repetitions (median)")
        ->check(CLI::Range(1, 1000));
    sub->add_option("--frames", opts->frames, "built-in input: latent frames of 30x52 tokens")
        ->check(CLI::Range(1, 1000));
    sub->add_option("--heads", opts->heads, "built-in input: heads")->check(CLI::Range(1, 64));
    on_selected(sub, [opts] {
        c10::InferenceMode guard;
        const c10::Device device = core::resolve_device(opts->device);
        warm_up(device);
        if (!opts->input.empty()) return run_on_input(*opts, device);
        QVG_CHECK(opts->tensor.empty() && opts->dump.empty(), "--tensor and --dump need --input");
        return run_builtin(*opts, device);
    });
});

}  // namespace
}  // namespace qvg::cli
