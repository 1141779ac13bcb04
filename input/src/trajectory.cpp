#include <qvg/input/trajectory.h>

#include "json_errors.h"

#include <algorithm>
#include <cmath>

namespace qvg::input {
namespace {

constexpr std::int64_t kMaxImageSide = 16384;
constexpr std::int64_t kMaxFramesPerLatent = 1024;

nlohmann::ordered_json pose_to_json(const CameraState& s) {
    return {{"position", {s.position.x, s.position.y, s.position.z}},
            {"yaw_deg", s.yaw_deg},
            {"pitch_deg", s.pitch_deg}};
}

CameraState pose_from_json(const nlohmann::json& j, const std::string& where,
                           const detail::JsonReader& reader) {
    reader.only_members(j, where, {"position", "yaw_deg", "pitch_deg"});
    const nlohmann::json& p =
        reader.array(reader.member(j, where, "position"), where + ".position");
    if (p.size() != 3) {
        reader.fail(where + ".position",
                    "expected 3 numbers [x, y, z], found " + std::to_string(p.size()));
    }
    CameraState s;
    s.position.x = reader.number(p[0], where + ".position[0]");
    s.position.y = reader.number(p[1], where + ".position[1]");
    s.position.z = reader.number(p[2], where + ".position[2]");
    s.yaw_deg = reader.number(reader.member(j, where, "yaw_deg"), where + ".yaw_deg");
    s.pitch_deg = reader.number(reader.member(j, where, "pitch_deg"), where + ".pitch_deg");
    if (std::abs(s.pitch_deg) >= 90.0) {
        reader.fail(where + ".pitch_deg",
                    "expected a pitch in (-90, 90) degrees, found " + std::to_string(s.pitch_deg));
    }
    return s;
}

Trajectory trajectory_from_json(const nlohmann::json& root, const detail::JsonReader& reader) {
    reader.header(root, "qvg-trajectory", 1);
    reader.only_members(root, "(root)",
                        {"format", "version", "seed", "width", "height", "fov_deg",
                         "frames_per_latent", "step", "start", "latents"});
    Trajectory t;
    t.seed = reader.unsigned_integer(reader.member(root, "(root)", "seed"), "seed");
    t.width = static_cast<int>(
        reader.integer(reader.member(root, "(root)", "width"), "width", 1, kMaxImageSide));
    t.height = static_cast<int>(
        reader.integer(reader.member(root, "(root)", "height"), "height", 1, kMaxImageSide));
    t.fov_deg = reader.number(reader.member(root, "(root)", "fov_deg"), "fov_deg");
    if (!(t.fov_deg > 0.0 && t.fov_deg < 180.0)) {
        reader.fail("fov_deg", "expected a field of view in (0, 180) degrees, found " +
                                   std::to_string(t.fov_deg));
    }
    t.frames_per_latent =
        static_cast<int>(reader.integer(reader.member(root, "(root)", "frames_per_latent"),
                                        "frames_per_latent", 1, kMaxFramesPerLatent));

    const nlohmann::json& step = reader.member(root, "(root)", "step");
    reader.only_members(step, "step", {"translation_units", "rotation_deg", "max_pitch_deg"});
    t.step.translation_units =
        reader.number(reader.member(step, "step", "translation_units"), "step.translation_units");
    t.step.rotation_deg =
        reader.number(reader.member(step, "step", "rotation_deg"), "step.rotation_deg");
    t.step.max_pitch_deg =
        reader.number(reader.member(step, "step", "max_pitch_deg"), "step.max_pitch_deg");
    if (t.step.translation_units < 0.0) {
        reader.fail("step.translation_units", "expected a non-negative number");
    }
    if (t.step.rotation_deg < 0.0)
        reader.fail("step.rotation_deg", "expected a non-negative number");
    if (!(t.step.max_pitch_deg >= 0.0 && t.step.max_pitch_deg < 90.0)) {
        reader.fail("step.max_pitch_deg",
                    "expected a number in [0, 90), found " + std::to_string(t.step.max_pitch_deg));
    }

    t.start = pose_from_json(reader.member(root, "(root)", "start"), "start", reader);

    const nlohmann::json& latents =
        reader.array(reader.member(root, "(root)", "latents"), "latents");
    t.latents.reserve(latents.size());
    for (std::size_t i = 0; i < latents.size(); ++i) {
        const std::string where = "latents[" + std::to_string(i) + "]";
        const nlohmann::json& l = latents[i];
        reader.only_members(l, where, {"action", "pose", "c2w"});
        TrajectoryLatent latent;
        latent.action = Action::from_label(static_cast<int>(reader.integer(
            reader.member(l, where, "action"), where + ".action", 0, kActionCount - 1)));
        latent.pose = pose_from_json(reader.member(l, where, "pose"), where + ".pose", reader);

        const nlohmann::json& m = reader.array(reader.member(l, where, "c2w"), where + ".c2w");
        if (m.size() != 16) {
            reader.fail(where + ".c2w",
                        "expected 16 numbers (a row-major 4x4), found " + std::to_string(m.size()));
        }
        Mat4 c2w{};
        for (std::size_t k = 0; k < 16; ++k) {
            c2w[k] = reader.number(m[k], where + ".c2w[" + std::to_string(k) + "]");
        }
        const double rigid = rigid_error(c2w);
        if (rigid > kTrajectoryPoseTolerance) {
            reader.fail(where + ".c2w",
                        "expected a rigid transform [R | t; 0 0 0 1], found one "
                        "off by " +
                            std::to_string(rigid));
        }
        const Mat4 expected = camera_to_world(latent.pose);
        double diff = 0.0;
        for (std::size_t k = 0; k < 16; ++k) diff = std::max(diff, std::abs(expected[k] - c2w[k]));
        if (diff > kTrajectoryPoseTolerance) {
            reader.fail(where + ".c2w",
                        "does not match the pose (max difference " + std::to_string(diff) + ")");
        }
        t.latents.push_back(latent);
    }
    return t;
}

}  // namespace

std::string trajectory_to_json(const Trajectory& t) {
    nlohmann::ordered_json root;
    root["format"] = "qvg-trajectory";
    root["version"] = 1;
    root["seed"] = t.seed;
    root["width"] = t.width;
    root["height"] = t.height;
    root["fov_deg"] = t.fov_deg;
    root["frames_per_latent"] = t.frames_per_latent;
    root["step"] = {{"translation_units", t.step.translation_units},
                    {"rotation_deg", t.step.rotation_deg},
                    {"max_pitch_deg", t.step.max_pitch_deg}};
    root["start"] = pose_to_json(t.start);
    nlohmann::ordered_json latents = nlohmann::ordered_json::array();
    for (const TrajectoryLatent& l : t.latents) {
        const Mat4 c2w = camera_to_world(l.pose);
        latents.push_back(
            {{"action", l.action.label()}, {"pose", pose_to_json(l.pose)}, {"c2w", c2w}});
    }
    root["latents"] = std::move(latents);
    return root.dump(1) + "\n";
}

void save_trajectory(const std::filesystem::path& path, const Trajectory& trajectory) {
    detail::write_file_atomically(path, trajectory_to_json(trajectory));
}

Trajectory parse_trajectory(std::string_view json_text, const std::string& source_name) {
    const detail::JsonReader reader(source_name);
    return trajectory_from_json(reader.parse(json_text), reader);
}

Trajectory load_trajectory(const std::filesystem::path& path) {
    const detail::JsonReader reader(path.string());
    return trajectory_from_json(reader.parse_file(path), reader);
}

}  // namespace qvg::input
