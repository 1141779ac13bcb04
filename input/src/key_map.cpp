#include <qvg/input/key_map.h>

#include "json_errors.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

namespace qvg::input {
namespace {

constexpr std::array<std::string_view, 12> kNamedKeys = {"Up",    "Down",  "Left",   "Right",
                                                         "Space", "Shift", "Ctrl",   "Alt",
                                                         "Tab",   "Enter", "Escape", "Backspace"};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

Control control_at(std::size_t i) { return static_cast<Control>(i); }

void validate_mouse(const MouseSettings& m, const detail::JsonReader& reader) {
    if (!(m.sensitivity_deg_per_px > 0.0)) {
        reader.fail("mouse.sensitivity_deg_per_px", "expected a positive number, found " +
                                                        std::to_string(m.sensitivity_deg_per_px));
    }
    if (!(m.threshold_deg >= 0.0)) {
        reader.fail("mouse.threshold_deg",
                    "expected a non-negative number, found " + std::to_string(m.threshold_deg));
    }
}

KeyMap key_map_from_json(const nlohmann::json& root, const detail::JsonReader& reader) {
    reader.header(root, "qvg-keymap", 1);
    reader.only_members(root, "(root)", {"format", "version", "keys", "mouse"});

    KeyMap map;
    const nlohmann::json& keys = reader.object(reader.member(root, "(root)", "keys"), "keys");
    for (const auto& [name, value] : keys.items()) {
        bool known = false;
        for (std::size_t i = 0; i < kControlCount; ++i)
            known = known || name == control_name(control_at(i));
        if (!known) {
            reader.fail("keys", "unknown control \"" + name +
                                    "\" (expected forward, backward, right, left, yaw_right, "
                                    "yaw_left, pitch_up, pitch_down)");
        }
    }
    std::vector<std::pair<std::string, Control>> bound;  // key -> control, to find clashes
    for (std::size_t i = 0; i < kControlCount; ++i) {
        const Control control = control_at(i);
        const std::string cname(control_name(control));
        const std::string where = "keys." + cname;
        if (!keys.contains(cname)) {
            reader.fail("keys", "missing control \"" + cname + "\" (use [] to leave it unbound)");
        }
        const nlohmann::json& list = reader.array(keys.at(cname), where);
        for (std::size_t k = 0; k < list.size(); ++k) {
            const std::string kwhere = where + "[" + std::to_string(k) + "]";
            const std::string raw = reader.string(list[k], kwhere);
            const std::optional<std::string> key = canonical_key_name(raw);
            if (!key) {
                reader.fail(kwhere,
                            "expected a key name (A-Z, 0-9, Up, Down, Left, Right, Space, "
                            "Shift, Ctrl, Alt, Tab, Enter, Escape, Backspace, F1-F12), "
                            "found \"" +
                                raw + "\"");
            }
            for (const auto& [other_key, other] : bound) {
                if (other_key == *key) {
                    reader.fail(kwhere, "key \"" + *key + "\" is already bound to \"" +
                                            std::string(control_name(other)) +
                                            "\"; a key may hold only one control");
                }
            }
            bound.emplace_back(*key, control);
            map.keys[i].push_back(*key);
        }
    }

    if (root.contains("mouse")) {
        const nlohmann::json& m = root.at("mouse");
        reader.only_members(
            m, "mouse",
            {"look", "sensitivity_deg_per_px", "threshold_deg", "invert_x", "invert_y"});
        if (m.contains("look")) map.mouse.look = reader.boolean(m.at("look"), "mouse.look");
        if (m.contains("sensitivity_deg_per_px")) {
            map.mouse.sensitivity_deg_per_px =
                reader.number(m.at("sensitivity_deg_per_px"), "mouse.sensitivity_deg_per_px");
        }
        if (m.contains("threshold_deg")) {
            map.mouse.threshold_deg = reader.number(m.at("threshold_deg"), "mouse.threshold_deg");
        }
        if (m.contains("invert_x")) {
            map.mouse.invert_x = reader.boolean(m.at("invert_x"), "mouse.invert_x");
        }
        if (m.contains("invert_y")) {
            map.mouse.invert_y = reader.boolean(m.at("invert_y"), "mouse.invert_y");
        }
        validate_mouse(map.mouse, reader);
    }
    return map;
}

}  // namespace

std::optional<std::string> canonical_key_name(std::string_view name) {
    if (name.size() == 1 && std::isalnum(static_cast<unsigned char>(name[0]))) {
        return std::string(1, static_cast<char>(std::toupper(static_cast<unsigned char>(name[0]))));
    }
    for (std::string_view k : kNamedKeys) {
        if (iequals(name, k)) return std::string(k);
    }
    for (int f = 1; f <= 12; ++f) {
        // Appended rather than "F" + to_string(f): GCC 12 -O3 flags that with a false
        // -Wrestrict.
        std::string fname = "F";
        fname += std::to_string(f);
        if (iequals(name, fname)) return fname;
    }
    return std::nullopt;
}

KeyMap default_key_map() {
    KeyMap map;
    auto bind = [&](Control c, std::vector<std::string> keys) {
        map.keys[static_cast<std::size_t>(c)] = std::move(keys);
    };
    bind(Control::kForward, {"W"});
    bind(Control::kBackward, {"S"});
    bind(Control::kRight, {"D"});
    bind(Control::kLeft, {"A"});
    bind(Control::kYawRight, {"Right", "L"});
    bind(Control::kYawLeft, {"Left", "J"});
    bind(Control::kPitchUp, {"Up", "I"});
    bind(Control::kPitchDown, {"Down", "K"});
    return map;
}

KeyMap load_key_map(const std::filesystem::path& path) {
    const detail::JsonReader reader(path.string());
    return key_map_from_json(reader.parse_file(path), reader);
}

KeyMap parse_key_map(std::string_view json_text, const std::string& source_name) {
    const detail::JsonReader reader(source_name);
    return key_map_from_json(reader.parse(json_text), reader);
}

std::string key_map_to_json(const KeyMap& map) {
    nlohmann::ordered_json root;
    root["format"] = "qvg-keymap";
    root["version"] = 1;
    nlohmann::ordered_json keys = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < kControlCount; ++i) {
        keys[std::string(control_name(control_at(i)))] = map.keys[i];
    }
    root["keys"] = keys;
    root["mouse"] = {{"look", map.mouse.look},
                     {"sensitivity_deg_per_px", map.mouse.sensitivity_deg_per_px},
                     {"threshold_deg", map.mouse.threshold_deg},
                     {"invert_x", map.mouse.invert_x},
                     {"invert_y", map.mouse.invert_y}};
    return root.dump(2) + "\n";
}

void save_key_map(const std::filesystem::path& path, const KeyMap& map) {
    detail::write_file_atomically(path, key_map_to_json(map));
}

ControlSet controls_from_input(const KeyMap& map, const InputState& input) {
    ControlSet controls;
    for (std::size_t i = 0; i < kControlCount; ++i) {
        for (const std::string& key : map.keys[i]) {
            if (std::find(input.keys_down.begin(), input.keys_down.end(), key) !=
                input.keys_down.end()) {
                controls.set(control_at(i));
            }
        }
    }
    if (map.mouse.look) {
        const MouseSettings& m = map.mouse;
        const double yaw_deg = input.mouse_dx_px * m.sensitivity_deg_per_px * (m.invert_x ? -1 : 1);
        // Screen y grows downward: moving the mouse up (dy < 0) looks up unless inverted.
        const double up_deg = -input.mouse_dy_px * m.sensitivity_deg_per_px * (m.invert_y ? -1 : 1);
        if (std::abs(yaw_deg) >= m.threshold_deg && yaw_deg != 0.0) {
            controls.set(yaw_deg > 0 ? Control::kYawRight : Control::kYawLeft);
        }
        if (std::abs(up_deg) >= m.threshold_deg && up_deg != 0.0) {
            controls.set(up_deg > 0 ? Control::kPitchUp : Control::kPitchDown);
        }
    }
    return controls;
}

Action action_from_input(const KeyMap& map, const InputState& input) {
    return action_from_controls(controls_from_input(map, input));
}

}  // namespace qvg::input
