#include <qvg/input/trajectory.h>

#include "input_test_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace qvg::input {
namespace {

std::string error_of(const std::string& text) {
    return input_error_of([&] { parse_trajectory(text, "traj.json"); });
}

Trajectory sample_trajectory() {
    Trajectory t;
    t.seed = 18446744073709551557ull;  // needs all 64 bits
    t.width = 128;
    t.height = 96;
    t.fov_deg = 75.5;
    t.frames_per_latent = 4;
    t.step = {0.1, 2.5, 30.0};
    t.start = {{0.1, -0.07, 1.0 / 3.0}, 12.345678901234567, -4.0};
    CameraState s = t.start;
    for (int i = 0; i < 40; ++i) {
        const Action a = Action::from_label((i * 37) % kActionCount);
        s = apply_action(s, a, t.step);
        t.latents.push_back({a, s});
    }
    return t;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same(const CameraState& a, const CameraState& b) {
    EXPECT_TRUE(same_bits(a.position.x, b.position.x));
    EXPECT_TRUE(same_bits(a.position.y, b.position.y));
    EXPECT_TRUE(same_bits(a.position.z, b.position.z));
    EXPECT_TRUE(same_bits(a.yaw_deg, b.yaw_deg));
    EXPECT_TRUE(same_bits(a.pitch_deg, b.pitch_deg));
}

TEST(Trajectory, JsonRoundTripIsExact) {
    TempDir dir;
    const Trajectory t = sample_trajectory();
    save_trajectory(dir.path() / "t.json", t);
    const Trajectory back = load_trajectory(dir.path() / "t.json");
    EXPECT_EQ(back.seed, t.seed);
    EXPECT_EQ(back.width, 128);
    EXPECT_EQ(back.height, 96);
    EXPECT_TRUE(same_bits(back.fov_deg, t.fov_deg));
    EXPECT_EQ(back.frames_per_latent, 4);
    EXPECT_TRUE(same_bits(back.step.translation_units, 0.1));
    EXPECT_TRUE(same_bits(back.step.rotation_deg, 2.5));
    EXPECT_TRUE(same_bits(back.step.max_pitch_deg, 30.0));
    expect_same(back.start, t.start);
    ASSERT_EQ(back.latents.size(), t.latents.size());
    for (std::size_t i = 0; i < t.latents.size(); ++i) {
        EXPECT_EQ(back.latents[i].action, t.latents[i].action);
        expect_same(back.latents[i].pose, t.latents[i].pose);
    }
    // Replaying the actions from the start reproduces every stored pose bit for bit.
    CameraState s = back.start;
    for (const TrajectoryLatent& l : back.latents) {
        s = apply_action(s, l.action, back.step);
        expect_same(s, l.pose);
    }
    EXPECT_EQ(trajectory_to_json(back), trajectory_to_json(t));
}

TEST(Trajectory, CorruptFilesGiveClearErrors) {
    Trajectory t = sample_trajectory();
    t.latents.resize(2);
    t.latents[0].action = Action::from_label(9);
    const std::string good = trajectory_to_json(t);
    ASSERT_NO_THROW(parse_trajectory(good, "traj.json"));

    auto expect_error = [&](const std::string& text, const std::string& needle) {
        const std::string msg = error_of(text);
        EXPECT_NE(msg.find("traj.json"), std::string::npos) << msg;
        EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
    };
    expect_error(good.substr(0, good.size() / 2), "not valid JSON");
    expect_error("", "not valid JSON");
    expect_error(replaced(good, "qvg-trajectory", "qvg-keymap"), "format");
    expect_error(replaced(good, "\"version\": 1", "\"version\": 3"), "version");
    expect_error(replaced(good, "\"width\": 128", "\"width\": 0"), "width");
    expect_error(replaced(good, "\"height\": 96", "\"height\": \"96\""), "height");
    expect_error(replaced(good, "\"fov_deg\": 75.5", "\"fov_deg\": 180.0"), "fov_deg");
    expect_error(replaced(good, "\"frames_per_latent\": 4", "\"frames_per_latent\": 0"),
                 "frames_per_latent");
    expect_error(replaced(good, "\"seed\": 18446744073709551557", "\"seed\": -1"), "seed");
    expect_error(replaced(good, "\"action\": 9", "\"action\": 81"), "latents[0].action");
    expect_error(replaced(good, "\"action\": 9", "\"action\": 9.5"), "latents[0].action");
    expect_error(replaced(good, "\"rotation_deg\": 2.5", "\"rotation_deg\": -2.5"),
                 "step.rotation_deg");
    expect_error(replaced(good, "\"latents\"", "\"latentz\""), "unknown member \"latentz\"");
    expect_error(replaced(good, "\"pitch_deg\": -4.0", "\"pitch_deg\": 95.0"), "start.pitch_deg");
    // A pose that disagrees with its c2w (the yaw of latent 1 edited by hand).
    const auto pose1 =
        good.find("\"yaw_deg\"", good.find("\"action\"", good.find("\"action\"") + 1));
    ASSERT_NE(pose1, std::string::npos);
    std::string edited = good;
    edited.insert(good.find(':', pose1) + 2, "1");
    expect_error(edited, "latents[1].c2w");
    // A c2w with the wrong number of entries.
    const auto c2w0 = good.find("\"c2w\"");
    std::string short_c2w = good;
    short_c2w.erase(good.find('[', c2w0) + 1, good.find(',', c2w0) - good.find('[', c2w0));
    expect_error(short_c2w, "16 numbers");
}

TEST(Trajectory, FileErrors) {
    EXPECT_THROW(load_trajectory("/nonexistent/t.json"), InputFileError);
    EXPECT_THROW(save_trajectory("/nonexistent/dir/t.json", sample_trajectory()), InputFileError);
    TempDir dir;
    write_file(dir.path() / "t.json", "{\"format\": \"qvg-trajectory\"");
    EXPECT_THROW(load_trajectory(dir.path() / "t.json"), InputFileError);
}

}  // namespace
}  // namespace qvg::input
