// qvg train and qvg world-sample end to end on the tiny preset: the files a run leaves, resuming
// a run cut in two gives the losses of the uninterrupted run, refusals that protect a run, and
// a rollout written as PNG frames with a summary.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <qvg/core/safetensors.h>
#include <qvg/core/world_model.h>

#include "cli/cli_util.h"

namespace qvg {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
    const fs::path dir = fs::path(::testing::TempDir()) / ("qvg_train_" + name);
    fs::remove_all(dir);
    return dir;
}

// The loss.csv rows of one phase as "step,loss" (timings left out).
std::vector<std::string> losses(const fs::path& dir, const std::string& phase) {
    std::ifstream f(dir / "loss.csv");
    std::vector<std::string> out;
    std::string line;
    while (std::getline(f, line)) {
        std::stringstream ss(line);
        std::string p, step, loss;
        std::getline(ss, p, ',');
        std::getline(ss, step, ',');
        std::getline(ss, loss, ',');
        if (p == phase) out.push_back(step + "," + loss);
    }
    return out;
}

std::string common_args(const fs::path& dir) {
    return "train --out '" + dir.string() +
           "' --preset tiny --device cpu --batch 2 --ae-batch 4 --clip-latents 2 --map-size 256 "
           "--data-threads 1 --warmup 2 --seed 3";
}

// With --reuse, a step's batch holds clips rendered by earlier steps: a run cut between two
// steps that share clips must render them again on resuming and see the same data.
TEST(TrainCli, ReusedClipsSurviveAResume) {
    const fs::path whole = fresh_dir("reuse_whole"), cut = fresh_dir("reuse_cut");
    const std::string args = " --ae-steps 1 --steps 4 --reuse 2";
    CommandResult a = run_qvg(common_args(whole) + args);
    ASSERT_EQ(a.exit_code, 0) << a.output;
    std::ifstream state_file(whole / "train_state.json");
    EXPECT_EQ(nlohmann::json::parse(state_file).at("reuse"), 2);
    CommandResult b1 = run_qvg(common_args(cut) + args + " --run-steps 2");
    ASSERT_EQ(b1.exit_code, 0) << b1.output;
    EXPECT_NE(b1.output.find("stopped at DiT step 1"), std::string::npos) << b1.output;
    CommandResult b2 = run_qvg(common_args(cut) + args + " --resume");
    ASSERT_EQ(b2.exit_code, 0) << b2.output;
    EXPECT_EQ(losses(cut, "dit"), losses(whole, "dit"));
    // ... and differ from a run without reuse (the batches really are made differently).
    const fs::path plain = fresh_dir("reuse_plain");
    CommandResult c = run_qvg(common_args(plain) + " --ae-steps 1 --steps 4");
    ASSERT_EQ(c.exit_code, 0) << c.output;
    EXPECT_NE(losses(plain, "dit"), losses(whole, "dit"));
    CommandResult bad = run_qvg(common_args(fresh_dir("reuse_bad")) + " --reuse 3");
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.output.find("reuse 3 must be in 1..batch (2)"), std::string::npos) << bad.output;
    for (const auto& d : {whole, cut, plain}) fs::remove_all(d);
}

// --own-history (scheduled sampling) is the run's from then on: a cut run resumed without the
// option keeps it and sees the same losses; it changes them against teacher forcing.
TEST(TrainCli, OwnHistoryIsKeptAcrossAResumeAndChangesTheLosses) {
    auto args_for = [](const fs::path& dir) {
        std::string a = common_args(dir);
        a.replace(a.find(" --clip-latents 2"), std::string(" --clip-latents 2").size(),
                  " --clip-latents 3");  // two history chunks: the second is predicted
        return a + " --ae-steps 1 --steps 4";
    };
    const fs::path whole = fresh_dir("own_whole"), cut = fresh_dir("own_cut");
    const std::string own = " --own-history 1 --own-history-sigma 0.6";
    CommandResult a = run_qvg(args_for(whole) + own);
    ASSERT_EQ(a.exit_code, 0) << a.output;
    std::ifstream state_file(whole / "train_state.json");
    const auto state = nlohmann::json::parse(state_file);
    EXPECT_EQ(state.at("own_history"), 1.0);
    EXPECT_EQ(state.at("own_history_sigma"), 0.6);
    CommandResult b1 = run_qvg(args_for(cut) + own + " --run-steps 3");
    ASSERT_EQ(b1.exit_code, 0) << b1.output;
    CommandResult b2 = run_qvg(args_for(cut) + " --resume");
    ASSERT_EQ(b2.exit_code, 0) << b2.output;
    EXPECT_EQ(b2.output.find("own history"), std::string::npos) << b2.output;  // unchanged
    EXPECT_EQ(losses(cut, "dit"), losses(whole, "dit"));
    const fs::path plain = fresh_dir("own_plain");
    CommandResult c = run_qvg(args_for(plain));
    ASSERT_EQ(c.exit_code, 0) << c.output;
    EXPECT_NE(losses(plain, "dit"), losses(whole, "dit"));
    CommandResult bad = run_qvg(args_for(fresh_dir("own_bad")) + " --own-history 1.5");
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.output.find("own-history"), std::string::npos) << bad.output;
    for (const auto& d : {whole, cut, plain}) fs::remove_all(d);
}

// A resumed run may train on longer clips from then on (the history the model learns grows).
TEST(TrainCli, AResumedRunCanChangeTheClipLength) {
    const fs::path dir = fresh_dir("clip_length");
    std::string base = common_args(dir);  // without its --clip-latents
    base.erase(base.find(" --clip-latents 2"), std::string(" --clip-latents 2").size());
    CommandResult a =
        run_qvg(base + " --clip-latents 2 --ae-steps 1 --steps 4 --run-steps 2");  // AE + 1 DiT
    ASSERT_EQ(a.exit_code, 0) << a.output;
    CommandResult b =
        run_qvg(base + " --clip-latents 3 --ae-steps 1 --steps 4 --run-steps 2 --resume");
    ASSERT_EQ(b.exit_code, 0) << b.output;
    EXPECT_NE(b.output.find("clip latents 2 -> 3 from DiT step 1"), std::string::npos) << b.output;
    auto state = [&] {
        std::ifstream f(dir / "train_state.json");
        return nlohmann::json::parse(f);
    };
    EXPECT_EQ(state().at("clip_latents"), 3);
    EXPECT_EQ(state().at("dit_step"), 3);
    // Without the option the run keeps its own length.
    CommandResult c = run_qvg(base + " --ae-steps 1 --steps 4 --resume");
    ASSERT_EQ(c.exit_code, 0) << c.output;
    EXPECT_EQ(c.output.find("clip latents"), std::string::npos) << c.output;
    EXPECT_EQ(state().at("clip_latents"), 3);
    EXPECT_EQ(state().at("dit_step"), 4);
    fs::remove_all(dir);
}

TEST(TrainCli, ResumingACutRunGivesTheSameLosses) {
    const fs::path whole = fresh_dir("whole"), cut = fresh_dir("cut");
    CommandResult a = run_qvg(common_args(whole) + " --ae-steps 3 --steps 4");
    ASSERT_EQ(a.exit_code, 0) << a.output;
    for (const char* file : {"world_model.safetensors", "train_state.json", "loss.csv",
                             "optimizer_ae.pt", "optimizer_dit.pt"}) {
        EXPECT_TRUE(fs::exists(whole / file)) << file;
    }
    const auto whole_dit = losses(whole, "dit");
    ASSERT_EQ(whole_dit.size(), 4u);
    EXPECT_EQ(losses(whole, "ae").size(), 3u);
    std::ifstream state_file(whole / "train_state.json");
    const auto state = nlohmann::json::parse(state_file);
    EXPECT_EQ(state.at("phase"), "done");
    EXPECT_EQ(state.at("dit_step"), 4);
    // The weights say which world they learnt (the viewer renders its ground truth from it).
    const auto weights = core::SafetensorsFile::open(whole / "world_model.safetensors");
    EXPECT_EQ(weights->metadata().at("qvg.world_seed"), "1");
    EXPECT_EQ(weights->metadata().at("qvg.map_size"), "256");

    // Cut inside the autoencoder phase and again inside the DiT phase.
    CommandResult b1 = run_qvg(common_args(cut) + " --ae-steps 3 --steps 4 --run-steps 2");
    ASSERT_EQ(b1.exit_code, 0) << b1.output;
    EXPECT_NE(b1.output.find("stopped at autoencoder step 2"), std::string::npos) << b1.output;
    CommandResult b2 = run_qvg(common_args(cut) + " --resume --ae-steps 3 --steps 4 --run-steps 3");
    ASSERT_EQ(b2.exit_code, 0) << b2.output;
    EXPECT_NE(b2.output.find("resuming"), std::string::npos) << b2.output;
    EXPECT_NE(b2.output.find("stopped at DiT step 2"), std::string::npos) << b2.output;
    CommandResult b3 = run_qvg(common_args(cut) + " --resume --ae-steps 3 --steps 4");
    ASSERT_EQ(b3.exit_code, 0) << b3.output;
    EXPECT_EQ(losses(cut, "ae"), losses(whole, "ae"));
    EXPECT_EQ(losses(cut, "dit"), whole_dit);
    fs::remove_all(cut);

    // The finished model rolls out: one PNG per generated frame plus a sheet and a summary.
    const fs::path sample = fresh_dir("sample");
    CommandResult s = run_qvg(
        "world-sample --model '" + (whole / "world_model.safetensors").string() + "' --out '" +
        sample.string() + "' --latents 3 --context 1 --map-size 256 --seed 5 --walk forward");
    ASSERT_EQ(s.exit_code, 0) << s.output;
    EXPECT_NE(s.output.find("frames/s"), std::string::npos) << s.output;
    std::ifstream summary_file(sample / "summary.json");
    const auto summary = nlohmann::json::parse(summary_file);
    EXPECT_EQ(summary.at("frames"), 6);  // 3 latents of 2 frames (tiny preset)
    EXPECT_EQ(summary.at("frames_detail").size(), 6u);
    EXPECT_TRUE(fs::exists(sample / "frame_0005.png"));
    EXPECT_FALSE(fs::exists(sample / "frame_0006.png"));
    EXPECT_TRUE(fs::exists(sample / "sheet.png"));
    std::ifstream png(sample / "frame_0000.png", std::ios::binary);
    char magic[8] = {};
    png.read(magic, 8);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG");
    fs::remove_all(sample);
    fs::remove_all(whole);
}

// Decoder fine-tuning after the DiT changes the decoder's tensors only (the latent space and the
// DiT stay as they were), and a run cut inside it resumes to the same losses.
TEST(TrainCli, DecoderFineTuningTouchesOnlyTheDecoderAndResumes) {
    const fs::path base = fresh_dir("decoder_base"), whole = fresh_dir("decoder_whole"),
                   cut = fresh_dir("decoder_cut");
    const std::string args = " --ae-steps 1 --steps 2";
    ASSERT_EQ(run_qvg(common_args(base) + args).exit_code, 0);
    CommandResult a = run_qvg(common_args(whole) + args + " --decoder-steps 3");
    ASSERT_EQ(a.exit_code, 0) << a.output;
    EXPECT_NE(a.output.find("decoder fine-tuning 3 steps"), std::string::npos) << a.output;
    EXPECT_EQ(losses(whole, "decoder").size(), 3u);
    EXPECT_EQ(losses(whole, "dit"), losses(base, "dit"));
    const auto before = core::SafetensorsFile::open(base / "world_model.safetensors");
    const auto after = core::SafetensorsFile::open(whole / "world_model.safetensors");
    EXPECT_EQ(after->metadata().at("qvg.train_decoder_step"), "3");
    int decoder_changed = 0;
    for (const core::TensorInfo& info : before->tensors()) {
        const std::string& name = info.name;
        const bool same = at::equal(before->tensor(name), after->tensor(name));
        if (name.rfind("ae.dec.", 0) == 0) {
            decoder_changed += same ? 0 : 1;
        } else {
            EXPECT_TRUE(same) << name << " changed";
        }
    }
    EXPECT_GT(decoder_changed, 0);
    // Cut after the DiT and inside the decoder phase.
    ASSERT_EQ(run_qvg(common_args(cut) + args + " --decoder-steps 3 --run-steps 4").exit_code, 0);
    CommandResult b = run_qvg(common_args(cut) + args + " --decoder-steps 3 --resume");
    ASSERT_EQ(b.exit_code, 0) << b.output;
    EXPECT_EQ(losses(cut, "decoder"), losses(whole, "decoder"));
    for (const auto& d : {base, whole, cut}) fs::remove_all(d);
}

// --decoder-width on a resumed run: a new decoder of that width is trained from step 0 under the
// frozen encoder; everything else stays, and the file loads as a world model of that width.
TEST(TrainCli, ANewDecoderOfAnotherWidthIsTrainedAndTheModelLoads) {
    const fs::path base = fresh_dir("width_base"), wide = fresh_dir("width_wide");
    const std::string args = " --ae-steps 1 --steps 2";
    ASSERT_EQ(run_qvg(common_args(base) + args + " --decoder-steps 2").exit_code, 0);
    fs::copy(base, wide, fs::copy_options::recursive);
    CommandResult untrained = run_qvg(common_args(wide) + args + " --resume --decoder-width 12");
    EXPECT_NE(untrained.exit_code, 0);
    EXPECT_NE(untrained.output.find("give --decoder-steps"), std::string::npos) << untrained.output;
    CommandResult r =
        run_qvg(common_args(wide) + args + " --resume --decoder-steps 3 --decoder-width 12");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("decoder width 8 -> 12"), std::string::npos) << r.output;
    EXPECT_EQ(losses(wide, "decoder").size(), 2u + 3u);  // the old decoder's rows stay
    const auto before = core::SafetensorsFile::open(base / "world_model.safetensors");
    const auto after = core::SafetensorsFile::open(wide / "world_model.safetensors");
    EXPECT_EQ(after->metadata().at("qvg.train_decoder_step"), "3");
    for (const core::TensorInfo& info : before->tensors()) {
        if (info.name.rfind("ae.dec.", 0) == 0) continue;
        EXPECT_TRUE(at::equal(before->tensor(info.name), after->tensor(info.name))) << info.name;
    }
    EXPECT_EQ(after->tensor("ae.dec.conv_in.weight").size(0), 24);  // 2 x 12 below full size
    EXPECT_EQ(after->tensor("ae.dec.conv_out.weight").size(1), 12);
    EXPECT_EQ(after->tensor("ae.enc.conv_in.weight").size(0), 8);
    const core::WorldModel model =
        core::WorldModel::load(wide / "world_model.safetensors", at::Device(at::kCPU));
    EXPECT_EQ(model.config().decoder_channels(), 12);
    EXPECT_EQ(model.config().ae_width, 8);
    const core::WorldModelConfig& c = model.config();
    const at::Tensor frames =
        model.decode(at::zeros({1, c.latent_channels, c.latent_size(), c.latent_size()}));
    EXPECT_EQ(frames.size(1), 3 * c.frames_per_latent);
    for (const auto& d : {base, wide}) fs::remove_all(d);
}

TEST(TrainCli, RefusesToOverwriteOrResumeNothing) {
    const fs::path dir = fresh_dir("refuse");
    CommandResult none = run_qvg(common_args(dir) + " --resume --ae-steps 1 --steps 0");
    EXPECT_NE(none.exit_code, 0);
    EXPECT_NE(none.output.find("nothing to resume"), std::string::npos) << none.output;
    CommandResult first = run_qvg(common_args(dir) + " --ae-steps 1 --steps 0");
    ASSERT_EQ(first.exit_code, 0) << first.output;
    CommandResult again = run_qvg(common_args(dir) + " --ae-steps 1 --steps 0");
    EXPECT_NE(again.exit_code, 0);
    EXPECT_NE(again.output.find("--resume"), std::string::npos) << again.output;
    // A state file whose weights belong to another step is refused, not silently mixed.
    {
        std::ifstream in(dir / "train_state.json");
        auto state = nlohmann::json::parse(in);
        state["ae_step"] = 7;
        std::ofstream(dir / "train_state.json") << state.dump();
    }
    CommandResult mixed = run_qvg(common_args(dir) + " --resume --ae-steps 9 --steps 0");
    EXPECT_NE(mixed.exit_code, 0);
    EXPECT_NE(mixed.output.find("do not belong"), std::string::npos) << mixed.output;
    CommandResult bad_model = run_qvg("world-sample --model '" + (dir / "loss.csv").string() +
                                      "' --out '" + (dir / "s").string() + "'");
    EXPECT_NE(bad_model.exit_code, 0);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace qvg
