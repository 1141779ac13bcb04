// qvg kernel-bench: the codec's encode and decode on one span, against the device-to-device copy
// bandwidth measured in the same run (GPU numbers are the meaningful ones).

#include <fstream>
#include <functional>
#include <iostream>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "build_commit.h"
#include "commands.h"
#include "qvg/core/codec.h"
#include "qvg/core/device.h"
#include "qvg/core/error.h"
#include "qvg/core/kmeans.h"
#include "qvg/core/quant_pack.h"
#include "qvg/core/synthetic.h"
#include "qvg/core/wan_rope.h"
#include "table.h"

namespace qvg::cli {
namespace {

struct KernelBenchOptions {
    std::string device = "auto";
    int64_t heads = 12;
    int64_t frames = 24;
    int reps = 50;
    std::string json;
    std::string commit = build_commit();
    bool variants = false;
    std::vector<int> stages = {0, 1};  // codecs timed: 0 = INT2 G16 S0, 1 = INT2 G64 S1
};

// The fused decode's launch shapes (kernels/qvg_decode.cu says why each might win): the
// generic kernel's layouts (the RoPE default among them) and the best earlier alternatives of
// the 4d9658c table, the compact kernel (the default without RoPE) named explicitly, then
// capped registers, fewer conversion instructions, software-pipelined rows and bulk (TMA)
// stores. The
// clearly slower shapes of that table (8 channels per thread, 32 side by side, stores without
// the streaming hint, codebooks in shared memory, 2 or 4 rows per thread) are still in the
// kernel and in the GPU test, not timed here.
std::vector<std::pair<std::string, core::DecodeLaunch>> decode_launches() {
    std::vector<std::pair<std::string, core::DecodeLaunch>> out;
    auto add = [&](const std::string& name, int parts, bool interleaved) -> core::DecodeLaunch& {
        core::DecodeLaunch l;
        l.parts_per_thread = parts;
        l.interleaved_parts = interleaved;
        return out.emplace_back(name, l).second;
    };
    for (bool lean : {false, true}) {
        const std::string suffix = lean ? ", lean conversions" : "";
        add("16 channels/thread, streaming stores" + suffix, 2, false).lean_math = lean;
        if (!lean) add("16 channels/thread, interleaved, streaming stores", 2, true);
        add("32 channels/thread, interleaved, streaming stores" + suffix, 4, true).lean_math = lean;
    }
    add("32 channels/thread, interleaved, streaming stores, 32-bit offsets, fused multiply-add", 0,
        false)
        .compact_index = true;
    for (int blocks : {6, 8})
        add(fmt::format("32 channels/thread, interleaved, streaming stores, registers for {} "
                        "blocks/SM",
                        blocks),
            4, true)
            .blocks_per_sm = blocks;
    core::DecodeLaunch& flat = add(
        "32 channels/thread, interleaved, streaming stores, flat grid, 1 row/thread, persistent", 4,
        true);
    flat.rows_per_thread = 1;
    flat.persistent = true;
    for (int depth : {1, 2})
        for (bool lean : {false, true}) {
            core::DecodeLaunch& l =
                add(fmt::format("32 channels/thread, interleaved, streaming stores, rows pipelined "
                                "{} ahead{}",
                                depth, lean ? ", lean conversions" : ""),
                    4, true);
            l.pipelined = depth;
            l.lean_math = lean;
        }
    for (bool lean : {false, true})
        for (bool evict_first : {true, false}) {
            if (!lean && !evict_first) continue;
            core::DecodeLaunch& l = add(fmt::format("bulk stores (smem tiles, cp.async.bulk){}{}",
                                                    evict_first ? ", L2 evict-first" : "",
                                                    lean ? ", lean conversions" : ""),
                                        0, false);
            l.bulk_stores = true;
            l.streaming_stores = evict_first;
            l.lean_math = lean;
        }
    return out;
}

int run(const KernelBenchOptions& o) {
    c10::InferenceMode guard;
    const c10::Device device = core::resolve_device(o.device);
    core::SyntheticTokens spec;
    spec.frames = o.frames;
    spec.heads = o.heads;
    const at::Tensor x = core::synthetic_tokens(spec).to(device);  // [1, H, N, 128] bf16
    const int64_t n = x.size(2), h = x.size(1), d = x.size(3);

    // Device-to-device copy of 1 GiB: the bandwidth yardstick (bytes read + written).
    at::Tensor src = at::empty({int64_t{1} << 29}, x.options().dtype(at::kShort));
    at::Tensor dst = at::empty_like(src);
    const double copy_ms = core::median_ms(
        device, [&] { dst.copy_(src); }, o.reps);
    const double copy_gbs = 2.0 * static_cast<double>(src.nbytes()) / (copy_ms * 1e6);
    src.reset();
    dst.reset();

    // "ms (median)" times one call from an idle device, so the host's launch work counts (as it
    // does for a single encode). "ms back-to-back" times kBackToBack calls in a row, divided: the
    // kernels' own time (the host queues the next launch while the device runs), which is what a
    // decode costs inside the model's stream of work.
    constexpr int kBackToBack = 20;
    Table t({"variant", "shape", "ms (median)", "GB/s", "% of copy", "ms back-to-back",
             "% of copy (b2b)"});
    nlohmann::json rows = nlohmann::json::array();
    // bytes <= 0: no meaningful byte count (a phase of the encode, a tiny kernel).
    auto add = [&](const std::string& variant, double ms, double bytes, double b2b_ms = 0.0) {
        const bool has_bytes = bytes > 0;
        const double gbs = has_bytes ? bytes / (ms * 1e6) : 0.0;
        const double b2b_gbs = b2b_ms > 0 ? bytes / (b2b_ms * 1e6) : 0.0;
        auto percent = [&](double v) {
            return has_bytes ? fmt::format("{:.1f}%", 100.0 * v / copy_gbs) : std::string();
        };
        t.add({variant, fmt::format("[1,{},{},{}]", h, n, d), fmt::format("{:.3f}", ms),
               has_bytes ? fmt::format("{:.0f}", gbs) : "", percent(gbs),
               b2b_ms > 0 ? fmt::format("{:.4f}", b2b_ms) : "",
               b2b_ms > 0 ? percent(b2b_gbs) : ""});
        nlohmann::json row = {{"variant", variant}, {"ms", ms}};
        if (has_bytes) {
            row["gbs"] = gbs;
            row["percent_of_copy"] = 100.0 * gbs / copy_gbs;
        }
        if (b2b_ms > 0) {
            row["back_to_back_ms"] = b2b_ms;
            if (has_bytes) row["back_to_back_percent_of_copy"] = 100.0 * b2b_gbs / copy_gbs;
        }
        rows.push_back(row);
    };
    // Both timings of a decode-like call.
    auto add_timed = [&](const std::string& variant, const std::function<void()>& fn,
                         double bytes) {
        const double ms = core::median_ms(device, fn, o.reps);
        const double b2b = core::median_ms(
                               device,
                               [&] {
                                   for (int i = 0; i < kBackToBack; ++i) fn();
                               },
                               std::max(5, o.reps / 5)) /
                           kBackToBack;
        add(variant, ms, bytes, b2b);
    };
    add("d2d copy 1 GiB", copy_ms, 2.0 * static_cast<double>(int64_t{1} << 30));
    {
        // A copy of the decode output's size ([1, N, H, D] BF16), launched like the decode: what
        // the same bytes cost with this size's launch and tail overheads (its "% of copy" is
        // against the 1 GiB copy above, as every row's).
        at::Tensor a = at::empty({1, n, h, d}, x.options());
        at::Tensor b = at::empty_like(a);
        add_timed(
            fmt::format("d2d copy {:.1f} MB (decode output size)",
                        static_cast<double>(a.nbytes()) / 1e6),
            [&] { b.copy_(a); }, 2.0 * static_cast<double>(a.nbytes()));
        if (device.is_cuda()) {
            // Ceilings: the decode output's bytes written with nothing read or computed (zeros).
            // Bytes counted: those written only, so "% of copy" compares write bandwidth with
            // the copy's read + write bandwidth; against a decode row, compare the ms.
            const double written = static_cast<double>(b.nbytes());
            const std::string mb = fmt::format("{:.1f} MB", written / 1e6);
            add_timed(
                "write-only " + mb + ": 16-byte streaming stores, default decode grid",
                [&] { core::write_decode_ceiling(b, core::DecodeWriteCeiling::kStreamingStores); },
                written);
            add_timed(
                "write-only " + mb + ": 16-byte streaming stores, linear",
                [&] { core::write_decode_ceiling(b, core::DecodeWriteCeiling::kLinearStores); },
                written);
            add_timed(
                "write-only " + mb + ": cudaMemsetAsync",
                [&] { core::write_decode_ceiling(b, core::DecodeWriteCeiling::kMemset); }, written);
        }
    }

    // The pieces of one span's k-means (stage 1, 256 centroids).
    {
        const at::Tensor xg = x.view({h, n, d});  // BF16, as the codec passes it
        core::KMeansOptions opt;
        opt.iterations = 2;
        const core::KMeansResult km = core::kmeans(xg, opt);
        // init, one assignment, one update and a cold 2-iteration k-means, under `prefix`.
        const at::Tensor ids = km.ids.to(at::kLong);
        auto pieces = [&](const std::string& prefix, const std::string& init,
                          const std::string& assign, const std::string& update) {
            add_timed(
                prefix + "k-means init (" + init + ")",
                [&] { core::kmeans_init(xg, opt.centroids, 1); }, 0.0);
            add_timed(
                prefix + "k-means assign (" + assign + ")",
                [&] { core::assign_nearest_with_distance(xg, km.centroids); },
                static_cast<double>(x.nbytes()));
            add_timed(
                prefix + "k-means update (" + update + ")",
                [&] { core::kmeans_update(xg, ids, km.centroids); },
                static_cast<double>(xg.nbytes()));
            const double ms = core::median_ms(
                device, [&] { core::kmeans(xg, opt); }, std::max(5, o.reps / 5));
            add(prefix + "k-means 2 iterations (cold start)", ms, static_cast<double>(x.nbytes()));
        };
        pieces("", "draw 256 tokens, copy rows", "1 pass, 256 centroids", "1 pass");
        const double warm_ms = core::median_ms(
            device, [&] { core::kmeans(xg, opt, km.centroids); }, std::max(5, o.reps / 5));
        add("k-means 2 iterations (warm start)", warm_ms, static_cast<double>(x.nbytes()));
        if (device.is_cuda() && o.variants) {
            // The previous kernels (same results), for old against new in one run.
            core::set_kmeans_legacy_kernels(true);
            pieces("  legacy: ", "sequential Floyd check", "block per 128 tokens",
                   "warp per cluster, one row in flight");
            core::set_kmeans_legacy_kernels(false);
        }
    }
    for (int stages : o.stages) {
        core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
        cfg.stages = stages;
        cfg.group = stages == 0 ? 16 : 64;
        auto codec = core::Codec::create(cfg);
        core::EncodedSpan span;
        const double enc_ms = core::median_ms(
            device, [&] { span = codec->encode(x); }, std::max(5, o.reps / 5), 2);
        add(cfg.describe() + " encode (2 iters)", enc_ms, static_cast<double>(x.nbytes()));
        // Where that time goes: device time between the encode's phase marks (on the GPU, CUDA
        // events on the stream, so host work shows as the device waiting inside a phase).
        for (const auto& [phase, ms] : core::phase_median_ms(
                 device, [&] { span = codec->encode(x); }, std::max(5, o.reps / 5), 1)) {
            add(fmt::format("  encode phase: {}", phase), ms, 0.0);
        }
        if (device.is_cuda() && o.variants && stages > 0) {
            core::set_kmeans_legacy_kernels(true);
            const double legacy_ms = core::median_ms(
                device, [&] { span = codec->encode(x); }, std::max(5, o.reps / 5), 2);
            add(cfg.describe() + " encode (2 iters), legacy k-means kernels", legacy_ms,
                static_cast<double>(x.nbytes()));
            for (const auto& [phase, ms] : core::phase_median_ms(
                     device, [&] { span = codec->encode(x); }, std::max(5, o.reps / 5), 1)) {
                add(fmt::format("  legacy encode phase: {}", phase), ms, 0.0);
            }
            core::set_kmeans_legacy_kernels(false);
            span = codec->encode(x);  // the decode rows below decode the current kernels' span
        }
        at::Tensor out = at::empty({1, n, h, d}, x.options());
        const double bytes = static_cast<double>(span.bytes() + out.nbytes());
        add_timed(
            cfg.describe() + " decode -> bf16 [B,N,H,D]", [&] { codec->decode_into(span, out); },
            bytes);
        if (device.is_cpu()) {
            // The host decode against the generic path on ATen ops it replaced (the same
            // values), in BF16 and as a float32 model reads its history.
            add_timed(
                "  decode -> bf16 on ATen ops",
                [&] { out.copy_(codec->decode(span).transpose(1, 2)); }, bytes);
            at::Tensor wide = at::empty({1, n, h, d}, x.options().dtype(at::kFloat));
            const double wide_bytes = static_cast<double>(span.bytes() + wide.nbytes());
            add_timed(
                cfg.describe() + " decode -> f32 [B,N,H,D]",
                [&] { codec->decode_into(span, wide); }, wide_bytes);
            add_timed(
                "  decode -> f32 on ATen ops",
                [&] { wide.copy_(codec->decode(span).transpose(1, 2)); }, wide_bytes);
        }
        // With the fused RoPE of the attention's read path (cos/sin tables read as well).
        const core::WanRope rope(d, device);
        const core::RopeAngles angles = rope.angles(0, spec.frames, spec.height, spec.width);
        const double rope_bytes =
            bytes + static_cast<double>(angles.cos.nbytes() + angles.sin.nbytes());
        add_timed(
            cfg.describe() + " decode + RoPE -> bf16",
            [&] { codec->decode_into(span, out, &angles); }, rope_bytes);
        if (device.is_cuda() && o.variants) {
            // The kernel's launch shapes side by side, plain and with RoPE (the default above
            // is the compact kernel, 32 interleaved channels/thread with streaming stores, and
            // the generic kernel with 16 side by side with RoPE: kernels/qvg_decode.h).
            for (const auto& [name, launch] : decode_launches()) {
                add_timed(
                    fmt::format("  decode, {}", name),
                    [&] { codec->decode_into(span, out, nullptr, &launch); }, bytes);
            }
            for (const auto& [name, launch] : decode_launches()) {
                add_timed(
                    fmt::format("  decode + RoPE, {}", name),
                    [&] { codec->decode_into(span, out, &angles, &launch); }, rope_bytes);
            }
        }
    }
    // Small codebooks at the decode: FP8 ones read as they are by the kernel, INT4 ones widened
    // to BF16 first, against BF16 codebooks of the same centroids count (S1, C256), one run.
    for (int bits : {16, 8, 4}) {
        core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
        cfg.stages = 1;
        cfg.codebook_bits = bits;
        auto codec = core::Codec::create(cfg);
        const core::EncodedSpan span = codec->encode(x);
        at::Tensor out = at::empty({1, n, h, d}, x.options());
        add_timed(
            cfg.describe() + " decode -> bf16 [B,N,H,D]", [&] { codec->decode_into(span, out); },
            static_cast<double>(span.bytes() + out.nbytes()));
    }
    // The range search per group (clip_search, 13 ranges tried): the asymmetric S1 encode with
    // and without it (both in the fused pass: the kernel on the GPU, the host loop on the CPU),
    // the scalar quantization alone in that pass (RTN's encode: no stage) and on ATen ops, with
    // and without it, in one run.
    for (bool clip : {false, true}) {
        core::CodecConfig cfg = core::default_codec_config(core::CodecMethod::kQvg);
        cfg.stages = 1;
        cfg.asymmetric = true;
        cfg.clip_search = clip;
        auto codec = core::Codec::create(cfg);
        const double enc_ms = core::median_ms(
            device, [&] { (void)codec->encode(x); }, std::max(5, o.reps / 5), 2);
        add(cfg.describe() + " encode (2 iters)", enc_ms, static_cast<double>(x.nbytes()));
        const core::GroupQuantSpec spec_q{2, 64, true, clip};
        add_timed(
            fmt::format("  INT2 G64 asym{} group quantization alone (ATen ops)",
                        clip ? " range search" : ""),
            [&] { (void)core::quantize_groups(x, spec_q); }, static_cast<double>(x.nbytes()));
        core::CodecConfig rtn = core::default_codec_config(core::CodecMethod::kRtn);
        rtn.bits = 2;
        rtn.group = 64;
        rtn.asymmetric = true;
        rtn.clip_search = clip;
        auto fused = core::Codec::create(rtn);
        add_timed(
            fmt::format("  INT2 G64 asym{} group quantization alone (fused pass: {})",
                        clip ? " range search" : "", rtn.describe()),
            [&] { (void)fused->encode(x); }, static_cast<double>(x.nbytes()));
    }
    const std::string gpu = core::device_name(device);
    std::cout << fmt::format("qvg kernel-bench on {} ({}), commit {}\n", gpu, device.str(),
                             o.commit)
              << t.str();
    if (!o.json.empty()) {
        std::ofstream f(o.json);
        f << nlohmann::json{{"gpu", gpu}, {"commit", o.commit}, {"rows", rows}}.dump(2) << "\n";
    }
    return 0;
}

const Registrar kRegister([](CLI::App& app) {
    auto o = std::make_shared<KernelBenchOptions>();
    CLI::App* sub = app.add_subcommand("kernel-bench",
                                       "Time QVG span encode/decode against the copy bandwidth");
    sub->add_option("--device", o->device, "auto, cpu or cuda");
    sub->add_option("--heads", o->heads, "heads of the span")->check(CLI::Range(1, 64));
    sub->add_option("--frames", o->frames, "latent frames of 30x52 tokens in the span")
        ->check(CLI::Range(1, 200));
    sub->add_option("--reps", o->reps, "timed repetitions")->check(CLI::Range(1, 10000));
    sub->add_option("--json", o->json, "also write the results here");
    sub->add_option("--commit", o->commit, "commit to record");
    sub->add_option("--stages", o->stages,
                    "codecs to time: 0 (QVG INT2 G16 S0) and/or 1 (QVG INT2 G64 S1); a profiler's "
                    "first decode launch is then the one wanted")
        ->check(CLI::Range(0, 1));
    sub->add_flag("--variants", o->variants,
                  "also time each CUDA decode launch shape, plain and with RoPE, and the previous "
                  "k-means kernels");
    on_selected(sub, [o] { return run(*o); });
});

}  // namespace
}  // namespace qvg::cli
