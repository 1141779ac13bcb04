#pragma once
// Key maps: which keys and mouse motion hold which control. Keys are named, not Qt key codes, so
// that this module stays free of Qt: the app turns its key events into these names.
//
// File format (assets/keymap.json):
//   {"format": "qvg-keymap", "version": 1,
//    "keys": {"forward": ["W"], "backward": ["S"], "right": ["D"], "left": ["A"],
//             "yaw_right": ["Right", "L"], "yaw_left": ["Left", "J"],
//             "pitch_up": ["Up", "I"], "pitch_down": ["Down", "K"]},
//    "mouse": {"look": true, "sensitivity_deg_per_px": 0.15, "threshold_deg": 1.5,
//              "invert_x": false, "invert_y": false}}
// Every control must be listed ([] leaves it unbound); a key may hold only one control; key names
// are case-insensitive (stored in their canonical spelling); "mouse" members are optional.

#include <qvg/input/action.h>
#include <qvg/input/file_error.h>

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qvg::input {

struct MouseSettings {
    bool look = true;                      // mouse motion turns the camera
    double sensitivity_deg_per_px = 0.15;  // degrees of turn per pixel of motion
    // A latent frame's accumulated turn counts as a rotation once it reaches this many degrees,
    // so that a resting hand's jitter does not turn the camera.
    double threshold_deg = 1.5;
    bool invert_x = false;
    bool invert_y = false;  // false: moving the mouse up looks up
};

struct KeyMap {
    std::array<std::vector<std::string>, kControlCount> keys;  // indexed by Control
    MouseSettings mouse;

    const std::vector<std::string>& keys_for(Control c) const {
        return keys[static_cast<std::size_t>(c)];
    }
};

// The canonical spelling of a key name ("w" -> "W", "left" -> "Left"), or nothing for a name
// that is not a key: A-Z, 0-9, Up, Down, Left, Right, Space, Shift, Ctrl, Alt, Tab, Enter,
// Escape, Backspace, F1-F12.
std::optional<std::string> canonical_key_name(std::string_view name);

// WASD move, arrow keys and IJKL look, mouse look (the contents of assets/keymap.json).
KeyMap default_key_map();

// Throw InputFileError naming the file (or `source_name`), the field and the problem.
KeyMap load_key_map(const std::filesystem::path& path);
KeyMap parse_key_map(std::string_view json_text, const std::string& source_name);
std::string key_map_to_json(const KeyMap& map);
void save_key_map(const std::filesystem::path& path, const KeyMap& map);

// What the user did during one latent frame: the keys held (canonical names) and the mouse motion
// accumulated over the frame in pixels (+x right, +y down, as screens count).
struct InputState {
    std::vector<std::string> keys_down;
    double mouse_dx_px = 0.0;
    double mouse_dy_px = 0.0;
};

ControlSet controls_from_input(const KeyMap& map, const InputState& input);
Action action_from_input(const KeyMap& map, const InputState& input);

}  // namespace qvg::input
