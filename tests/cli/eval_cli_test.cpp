// qvg eval on the tiny world model (16x16 frames, 2 per latent): the report's structure and
// numbers (bytes ordering, the BF16 row against itself, per-frame array lengths, revisits that
// only a full history remembers), identical numbers from identical runs, and caller mistakes.

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/tiny_world.h"
#include "qvg/core/world_model.h"
#include "test_util.h"

namespace qvg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path save_tiny_model(const fs::path& dir) { return save_tiny_world_model(dir); }

// By default a short open trajectory and one closed square loop (4 * (1 + 30) latents of 2
// frames). A span of the tiny model holds 32 tokens: 4 centroids keep QVG lossy and smaller than
// BF16 (32 centroids would store every token exactly, in more bytes than BF16).
std::string eval_args(const fs::path& model, const fs::path& out,
                      const std::string& rest = "--trajectories straight,square --seed 3") {
    return "eval --model '" + model.string() + "' --out '" + out.string() +
           "' --device cpu --threads 1 --map-size 256 --frames 8 --loop-side 1 --span 8 "
           "--caches bf16,qvg-int2-s1,rtn-int2,window,sink-window --windows 8 --centroids 4 " +
           rest;
}

json read_json(const fs::path& path) { return json::parse(read_file(path)); }

const json& run_of(const json& trajectory, const std::string& cache) {
    for (const json& r : trajectory.at("runs")) {
        if (r.at("cache") == cache) return r;
    }
    throw std::runtime_error("no run " + cache);
}

// The report without what depends on the clock.
json without_timings(json j) {
    if (j.is_object()) {
        for (const char* key : {"fps", "ms_per_chunk", "rollout_ms", "chunk_ms"}) j.erase(key);
        for (auto& [key, value] : j.items()) value = without_timings(value);
    } else if (j.is_array()) {
        for (auto& value : j) value = without_timings(value);
    }
    return j;
}

TEST(EvalCli, ReportsQualityMemoryAndRevisits) {
    TempDir dir;
    const fs::path model = save_tiny_model(dir.path());
    const fs::path out = dir.path() / "report.json";
    const CommandResult r = run_qvg(eval_args(model, out));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const char* table : {"(a) trajectories", "(b) quality / memory", "(c) revisits"}) {
        EXPECT_NE(r.output.find(table), std::string::npos) << table << "\n" << r.output;
    }
    const json report = read_json(out);
    EXPECT_EQ(report.at("command"), "eval");
    EXPECT_EQ(report.at("model"), model.string());
    EXPECT_EQ(report.at("device"), "cpu");
    EXPECT_EQ(report.at("model_config").at("image_size"), 16);
    const double cap = report.at("metrics").at("psnr_cap_db").get<double>();
    EXPECT_EQ(cap, 100.0);

    const json& trajectories = report.at("trajectories");
    ASSERT_EQ(trajectories.size(), 2u);
    const json& straight = trajectories[0];
    const json& square = trajectories[1];
    EXPECT_EQ(straight.at("name"), "straight");
    EXPECT_EQ(straight.at("generated_frames"), 8);
    EXPECT_EQ(square.at("generated_frames"), 2 * 4 * (1 + 30));
    for (const json& t : trajectories) {
        const size_t frames = t.at("generated_frames").get<size_t>();
        EXPECT_EQ(t.at("labels").size(), frames / 2 + 1);  // one per latent, context included
        EXPECT_EQ(t.at("copy").at("psnr").size(), frames);
        EXPECT_EQ(t.at("ahead_copy").at("psnr").size(), frames);
        ASSERT_EQ(t.at("runs").size(), 5u);
        for (const json& run : t.at("runs")) {
            SCOPED_TRACE(t.at("name").get<std::string>() + " " +
                         run.at("cache").get<std::string>());
            EXPECT_EQ(run.at("rollout").at("psnr").size(), frames);
            EXPECT_EQ(run.at("rollout").at("ssim").size(), frames);
            EXPECT_EQ(run.at("psnr_vs_bf16").size(), frames);
            EXPECT_EQ(run.at("chunk_ms").size(), frames / 2);
            EXPECT_EQ(run.at("ahead").at("psnr").size(), frames);
            EXPECT_EQ(run.at("ahead").at("ssim").size(), frames);
            EXPECT_EQ(run.at("ahead").at("psnr_vs_bf16").size(), frames);
            for (double p : run.at("rollout").at("psnr")) {
                EXPECT_GT(p, 0.0);
                EXPECT_LT(p, cap);  // the model does not draw the truth exactly
            }
            for (double s : run.at("rollout").at("ssim")) {
                EXPECT_GT(s, -1.0);
                EXPECT_LE(s, 1.0);
            }
            // Detail: of every generated frame, and pooled against the ground truth's.
            ASSERT_EQ(run.at("rollout").at("detail").size(), frames);
            for (double d : run.at("rollout").at("detail")) EXPECT_GE(d, 0.0);
            EXPECT_GT(run.at("rollout").at("detail_ratio").get<double>(), 0.0);
            EXPECT_EQ(run.at("ahead").at("detail").size(), frames);
            EXPECT_GT(run.at("fps").get<double>(), 0.0);
            EXPECT_GT(run.at("kv_bytes").get<int64_t>(), 0);
        }
        // The copy baseline shows one frame throughout: one detail value, per frame.
        const json& copy_detail = t.at("copy").at("detail");
        ASSERT_EQ(copy_detail.size(), frames);
        for (const json& d : copy_detail) EXPECT_EQ(d, copy_detail[0]);
        // The BF16 row against itself is the cap, frame by frame and over the video.
        const json& bf16 = run_of(t, "bf16");
        for (double p : bf16.at("psnr_vs_bf16")) EXPECT_EQ(p, cap);
        EXPECT_EQ(bf16.at("video_psnr_vs_bf16"), cap);
        for (double p : bf16.at("ahead").at("psnr_vs_bf16")) EXPECT_EQ(p, cap);
        EXPECT_EQ(bf16.at("ahead").at("video_psnr_vs_bf16"), cap);
        // The context alone is in the cache until a span of 8 latents is full: only the square
        // is long enough for the quantized caches to differ from BF16.
        const json& qvg = run_of(t, "qvg-int2-s1");
        EXPECT_EQ(qvg.at("label"), "QVG INT2 G16 S1");  // G64 capped at the head size
        // Budget-matched windows hold no more than QVG INT2 S1.
        EXPECT_LE(run_of(t, "window").at("kv_bytes"), qvg.at("kv_bytes"));
        EXPECT_LE(run_of(t, "sink-window").at("kv_bytes"), qvg.at("kv_bytes"));
    }
    // 2-bit spans hold fewer bytes than BF16 once spans exist (the square's 125 latents).
    const json& sq_bf16 = run_of(square, "bf16");
    const json& sq_qvg = run_of(square, "qvg-int2-s1");
    EXPECT_LT(sq_qvg.at("kv_bytes"), sq_bf16.at("kv_bytes"));
    EXPECT_EQ(sq_bf16.at("kv_frames_held"), 125);
    EXPECT_EQ(sq_qvg.at("kv_frames_held"), 125);
    EXPECT_LT(sq_qvg.at("video_psnr_vs_bf16").get<double>(), cap);
    EXPECT_GT(sq_qvg.at("video_psnr_vs_bf16").get<double>(), 10.0);
    // One chunk ahead the history is the ground truth for every cache: the quantized history
    // alone moves the prediction away from BF16's.
    const double ahead_vs = sq_qvg.at("ahead").at("video_psnr_vs_bf16").get<double>();
    EXPECT_LT(ahead_vs, cap);
    EXPECT_GT(ahead_vs, 10.0);

    // Revisits: the square ends facing its start, the straight walk never comes back.
    EXPECT_TRUE(straight.at("revisit_frames").empty());
    EXPECT_TRUE(straight.at("history_runs").empty());
    const json& revisits = square.at("revisit_frames");
    ASSERT_FALSE(revisits.empty());
    for (const json& v : revisits) {
        EXPECT_GE(v.at("generated_frame").get<int>(), 0);
        EXPECT_GE(v.at("clip_frame").get<int>() - v.at("last_seen_clip_frame").get<int>(), 64);
    }
    const int n = static_cast<int>(revisits.size());
    EXPECT_EQ(sq_bf16.at("revisit").at("frames"), n);
    EXPECT_EQ(sq_bf16.at("revisit").at("remembered"), n);  // the full history keeps the start
    EXPECT_EQ(run_of(square, "sink-window").at("revisit").at("remembered"), n);  // in the sink
    ASSERT_EQ(square.at("history_runs").size(), 1u);
    const json& window8 = square.at("history_runs")[0];
    EXPECT_EQ(window8.at("cache"), "window-8");
    EXPECT_EQ(window8.at("kv_frames_held"), 8);
    EXPECT_EQ(window8.at("revisit").at("remembered"), 0);  // seen ~120 latents earlier
    EXPECT_FALSE(window8.at("revisit").at("mean_psnr").is_null());

    // The Pareto table: one row per cache, BF16 first; nothing beats a front row on both axes.
    const json& summary = report.at("summary");
    ASSERT_EQ(summary.size(), 5u);
    EXPECT_EQ(summary[0].at("cache"), "bf16");
    EXPECT_EQ(summary[0].at("psnr_vs_bf16"), cap);
    EXPECT_EQ(summary[0].at("ahead_psnr_vs_bf16"), cap);
    for (const json& row : summary) {
        bool dominated = false;
        for (const json& other : summary) {
            dominated =
                dominated || (&other != &row && other.at("kv_bytes") <= row.at("kv_bytes") &&
                              other.at("mean_psnr") > row.at("mean_psnr"));
        }
        EXPECT_EQ(row.at("pareto").get<bool>(), !dominated) << row.at("cache");
    }
    // The summary's detail ratio pools the rollouts' frames: sum of their detail over the sum of
    // the ground truth's (each run's sum recovered from its own ratio).
    for (size_t c = 0; c < summary.size(); ++c) {
        double got = 0, truth = 0;
        for (const json& t : trajectories) {
            const json& rollout = t.at("runs")[c].at("rollout");
            double sum = 0;
            for (double d : rollout.at("detail")) sum += d;
            got += sum;
            truth += sum / rollout.at("detail_ratio").get<double>();
        }
        EXPECT_NEAR(summary[c].at("detail_ratio").get<double>(), got / truth, 1e-9)
            << summary[c].at("cache");
    }

    // The same command again gives the same numbers (timings aside).
    const fs::path again = dir.path() / "again.json";
    const CommandResult r2 = run_qvg(eval_args(model, again));
    ASSERT_EQ(r2.exit_code, 0) << r2.output;
    json a = without_timings(report), b = without_timings(read_json(again));
    EXPECT_EQ(a, b);
    // Another noise seed changes them.
    const fs::path other = dir.path() / "other.json";
    ASSERT_EQ(
        run_qvg(eval_args(model, other, "--seed 4 --no-ahead --trajectories straight")).exit_code,
        0);
    const json o = read_json(other);
    EXPECT_TRUE(o.at("trajectories")[0].at("runs")[0].at("ahead").is_null());
    EXPECT_NE(o.at("trajectories")[0].at("runs")[0].at("rollout").at("psnr"),
              straight.at("runs")[0].at("rollout").at("psnr"));
}

TEST(EvalCli, WalksRepeatEachTrajectoryFromItsOwnStartAndAverage) {
    TempDir dir;
    const fs::path model = save_tiny_model(dir.path());
    const fs::path out = dir.path() / "walks.json";
    const CommandResult r =
        run_qvg(eval_args(model, out, "--trajectories straight --walks 3 --no-ahead"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const json report = read_json(out);
    EXPECT_EQ(report.at("options").at("walks"), 3);
    const json& t = report.at("trajectories");
    ASSERT_EQ(t.size(), 3u);
    std::vector<double> psnr;
    for (int w = 0; w < 3; ++w) {
        EXPECT_EQ(t[w].at("name"), "straight #" + std::to_string(w + 1));
        EXPECT_EQ(t[w].at("trajectory"), "straight");
        EXPECT_EQ(t[w].at("walk"), w);
        psnr.push_back(t[w].at("runs")[0].at("rollout").at("mean_psnr").get<double>());
    }
    // Each walk starts elsewhere.
    EXPECT_NE(t[0].at("start_pose"), t[1].at("start_pose"));
    EXPECT_NE(t[1].at("start_pose"), t[2].at("start_pose"));
    // (a') averages them: the printed mean is the mean of the three walks' BF16 PSNRs.
    EXPECT_NE(r.output.find("(a') means over 3 walks"), std::string::npos) << r.output;
    const double m = (psnr[0] + psnr[1] + psnr[2]) / 3.0;
    EXPECT_NE(r.output.find(fmt::format("{:.2f}", m)), std::string::npos) << m << "\n" << r.output;
}

// --batch runs walks of equal length side by side: the same walks, bytes and revisits as one by
// one, and one chunk ahead (where nothing drifts) the same scores to within 0.05 dB: each walk
// keeps its own noise stream and its own k-means draws (a batch row is encoded as it would be
// alone), but the matrix shapes change the rounding. Two threads, so that rendering and scoring
// run in parallel.
TEST(EvalCli, BatchedWalksScoreAsTheyDoOneByOne) {
    TempDir dir;
    const fs::path model = save_tiny_model(dir.path());
    json reports[2];
    for (int batch : {1, 2}) {
        const fs::path out = dir.path() / fmt::format("batch{}.json", batch);
        std::string args = eval_args(
            model, out,
            fmt::format("--trajectories straight,square --walks 3 --seed 3 --batch {}", batch));
        args.replace(args.find("--threads 1"), 11, "--threads 2");
        const CommandResult r = run_qvg(args);
        ASSERT_EQ(r.exit_code, 0) << r.output;
        if (batch == 2) {  // straight and square: 3 walks each, in batches of 2 and 1
            EXPECT_NE(r.output.find("6 walks rendered"), std::string::npos) << r.output;
            EXPECT_NE(r.output.find("4 batch(es)"), std::string::npos) << r.output;
        }
        reports[batch - 1] = read_json(out);
    }
    EXPECT_EQ(reports[1].at("options").at("batch"), 2);
    const json& a = reports[0].at("trajectories");
    const json& b = reports[1].at("trajectories");
    ASSERT_EQ(a.size(), 6u);
    ASSERT_EQ(b.size(), 6u);
    for (size_t t = 0; t < a.size(); ++t) {
        EXPECT_EQ(a[t].at("name"), b[t].at("name"));
        EXPECT_EQ(a[t].at("start_pose"), b[t].at("start_pose"));
        EXPECT_EQ(a[t].at("noise_seed"), b[t].at("noise_seed"));
        EXPECT_EQ(a[t].at("revisit_frames"), b[t].at("revisit_frames"));
        EXPECT_EQ(a[t].at("copy"), b[t].at("copy"));
        ASSERT_EQ(a[t].at("runs").size(), b[t].at("runs").size());
        ASSERT_EQ(a[t].at("history_runs").size(), b[t].at("history_runs").size());
        for (size_t i = 0; i < a[t].at("runs").size(); ++i) {
            const json& ra = a[t].at("runs")[i];
            const json& rb = b[t].at("runs")[i];
            const std::string what = fmt::format("{} / {}", a[t].at("name").get<std::string>(),
                                                 ra.at("label").get<std::string>());
            EXPECT_EQ(ra.at("kv_bytes"), rb.at("kv_bytes")) << what;  // per walk, not per batch
            EXPECT_EQ(ra.at("kv_frames_held"), rb.at("kv_frames_held")) << what;
            EXPECT_EQ(ra.at("rollout").at("psnr").size(), rb.at("rollout").at("psnr").size());
            // One chunk ahead nothing drifts: only rounding separates the two.
            EXPECT_NEAR(ra.at("ahead").at("mean_psnr").get<double>(),
                        rb.at("ahead").at("mean_psnr").get<double>(), 0.05)
                << what;
        }
    }
}

// -asym stores a zero point beside each scale (more bytes, 4 INT2 levels instead of 3) and -i<N>
// sets the k-means iterations; both show in the row's label and policy.
TEST(EvalCli, AsymmetricAndIterationSuffixesReachTheCodec) {
    TempDir dir;
    const fs::path model = save_tiny_model(dir.path());
    const fs::path out = dir.path() / "report.json";
    const CommandResult r =
        run_qvg(eval_args(model, out, "--trajectories square --no-ahead --seed 3") +
                " --caches bf16,qvg-int2-s1,qvg-int2-s1-asym,qvg-int2-s1-i6,rtn-int2-asym,"
                "qvg-int2-s1-asym-kch,qvg-int2-s1-asym-clip,qvg-int2-s1-c8-asym,"
                "qvg-int2-s1-c16-asym-fp8c,qvg-int2-s1-c30-asym-int4c");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const json t = read_json(out).at("trajectories").at(0);
    const json& sym = run_of(t, "qvg-int2-s1");
    const json& asym = run_of(t, "qvg-int2-s1-asym");
    const json& iters = run_of(t, "qvg-int2-s1-i6");
    const json& rtn = run_of(t, "rtn-int2-asym");
    const json& kch = run_of(t, "qvg-int2-s1-asym-kch");
    EXPECT_EQ(asym.at("label"), "QVG INT2 G16 S1 asym");
    EXPECT_EQ(kch.at("label"), "QVG INT2 G16 S1 asym K/ch");
    EXPECT_EQ(kch.at("policy").at("channel_keys"), true);
    EXPECT_EQ(asym.at("policy").at("channel_keys"), false);
    // Keys per channel in groups of 16 tokens: whole frames of the tiny model's tokens, so the
    // same bytes as per token; a different codec, so a different output.
    EXPECT_EQ(kch.at("kv_bytes"), asym.at("kv_bytes"));
    EXPECT_NE(kch.at("psnr_vs_bf16"), asym.at("psnr_vs_bf16"));
    // -clip: the range search, in the label and policy; same bytes, another output.
    const json& clip = run_of(t, "qvg-int2-s1-asym-clip");
    EXPECT_EQ(clip.at("label"), "QVG INT2 G16 S1 asym clip");
    EXPECT_EQ(clip.at("policy").at("clip_search"), true);
    EXPECT_EQ(asym.at("policy").at("clip_search"), false);
    EXPECT_EQ(clip.at("kv_bytes"), asym.at("kv_bytes"));
    EXPECT_NE(clip.at("psnr_vs_bf16"), asym.at("psnr_vs_bf16"));
    // -fp8c: FP8 codebooks, twice the centroids in the same bytes.
    const json& c8 = run_of(t, "qvg-int2-s1-c8-asym");
    const json& fp8c = run_of(t, "qvg-int2-s1-c16-asym-fp8c");
    EXPECT_EQ(fp8c.at("label"), "QVG INT2 G16 S1 asym FP8-codebooks C16");
    EXPECT_EQ(fp8c.at("policy").at("codebook_bits"), 8);
    EXPECT_EQ(c8.at("policy").at("codebook_bits"), 16);
    EXPECT_EQ(fp8c.at("kv_bytes"), c8.at("kv_bytes"));
    EXPECT_NE(fp8c.at("psnr_vs_bf16"), c8.at("psnr_vs_bf16"));
    // -int4c: INT4 codebooks with an FP8 scale and zero per centroid (D / 2 + 2 bytes each).
    const json& int4c = run_of(t, "qvg-int2-s1-c30-asym-int4c");
    EXPECT_EQ(int4c.at("label"), "QVG INT2 G16 S1 asym INT4-codebooks C30");
    EXPECT_EQ(int4c.at("policy").at("codebook_bits"), 4);
    EXPECT_NE(int4c.at("psnr_vs_bf16"), fp8c.at("psnr_vs_bf16"));
    EXPECT_EQ(iters.at("label"), "QVG INT2 G16 S1 I6");
    EXPECT_EQ(rtn.at("label"), "RTN INT2 G16 asym");
    EXPECT_EQ(sym.at("policy").at("asymmetric"), false);
    EXPECT_EQ(asym.at("policy").at("asymmetric"), true);
    EXPECT_EQ(rtn.at("policy").at("asymmetric"), true);
    EXPECT_EQ(sym.at("policy").at("iterations"), 2);
    EXPECT_EQ(iters.at("policy").at("iterations"), 6);
    // One FP8 zero point per group of 16 channels more than the symmetric codec, in every span.
    EXPECT_GT(asym.at("kv_bytes").get<int64_t>(), sym.at("kv_bytes").get<int64_t>());
    EXPECT_EQ(iters.at("kv_bytes"), sym.at("kv_bytes"));
    // Different codecs, different outputs.
    EXPECT_NE(asym.at("psnr_vs_bf16"), sym.at("psnr_vs_bf16"));
}

TEST(EvalCli, RejectsBadOptions) {
    TempDir dir;
    const fs::path model = save_tiny_model(dir.path());
    const std::string base = "eval --model '" + model.string() + "' --map-size 256 --device cpu";
    struct Case {
        std::string args;
        std::string message;
    };
    const std::vector<Case> cases = {
        {base + " --caches bf16,qvg-int3", "qvg-int3"},
        {base + " --caches bf16,lru", "unknown cache 'lru'"},
        {base + " --caches bf16,window", "not in the list"},
        {base + " --frames 7", "--frames 7 is not a multiple of the model's chunk"},
        {base + " --trajectories straight,circle", "unknown trajectory 'circle'"},
        {base + " --caches bf16,qvg-int2-s1-c64 --span 8", "centroids"},
        {base + " --caches bf16,qvg-int2-s1-i0", "'0' is not a positive whole number"},
        {base + " --caches bf16,kivi-int2-i3", "unexpected 'i3'"},
        {base + " --caches bf16,fp8-asym", "fp8 takes no bits"},
        {base + " --caches bf16,kivi-int2-kch", "unexpected 'kch'"},
        {base + " --caches bf16,kivi-int2-fp8c", "unexpected 'fp8c'"},
        {base + " --caches bf16,qvg-int2-clipped", "'lipped' is not a positive whole number"},
        {"eval --model '" + (dir.path() / "missing.safetensors").string() + "'", "no such file"},
        {"eval --frames 8", "--model"},
        {base + " --walks 0", "--walks"},
        {base + " --out '" + (dir.path() / "no/such/dir/r.json").string() + "'", "does not exist"},
    };
    for (const Case& c : cases) {
        const CommandResult r = run_qvg(c.args);
        EXPECT_NE(r.exit_code, 0) << c.args << "\n" << r.output;
        EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    }
}

}  // namespace
}  // namespace qvg
