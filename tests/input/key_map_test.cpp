#include <qvg/input/key_map.h>

#include "input_test_util.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <string>

namespace qvg::input {
namespace {

std::string error_of(const std::string& text) {
    return input_error_of([&] { parse_key_map(text, "test.json"); });
}

const std::string kValid = R"({
  "format": "qvg-keymap", "version": 1,
  "keys": {"forward": ["w", "up"], "backward": ["S"], "right": ["D"], "left": ["A"],
           "yaw_right": ["L"], "yaw_left": ["J"], "pitch_up": ["I"], "pitch_down": []},
  "mouse": {"sensitivity_deg_per_px": 0.5, "invert_y": true}
})";

TEST(KeyMap, ShippedAssetIsTheDefault) {
    const KeyMap loaded = load_key_map(std::string(QVG_ASSETS_DIR) + "/keymap.json");
    const KeyMap def = default_key_map();
    EXPECT_EQ(loaded.keys, def.keys);
    EXPECT_EQ(loaded.mouse.look, def.mouse.look);
    EXPECT_EQ(loaded.mouse.sensitivity_deg_per_px, def.mouse.sensitivity_deg_per_px);
    EXPECT_EQ(loaded.mouse.threshold_deg, def.mouse.threshold_deg);
    EXPECT_EQ(loaded.mouse.invert_y, def.mouse.invert_y);
}

TEST(KeyMap, ParsesAndCanonicalisesKeyNames) {
    const KeyMap m = parse_key_map(kValid, "test.json");
    EXPECT_EQ(m.keys_for(Control::kForward), (std::vector<std::string>{"W", "Up"}));
    EXPECT_TRUE(m.keys_for(Control::kPitchDown).empty());
    EXPECT_DOUBLE_EQ(m.mouse.sensitivity_deg_per_px, 0.5);
    EXPECT_TRUE(m.mouse.invert_y);
    EXPECT_TRUE(m.mouse.look);  // default kept
}

TEST(KeyMap, SaveLoadRoundTrip) {
    TempDir dir;
    KeyMap m = parse_key_map(kValid, "test.json");
    m.mouse.threshold_deg = 0.25;
    save_key_map(dir.path() / "k.json", m);
    const KeyMap back = load_key_map(dir.path() / "k.json");
    EXPECT_EQ(back.keys, m.keys);
    EXPECT_EQ(back.mouse.threshold_deg, 0.25);
    EXPECT_EQ(back.mouse.invert_y, true);
}

TEST(KeyMap, BadFilesGiveClearErrors) {
    EXPECT_NE(error_of("{").find("not valid JSON"), std::string::npos);
    EXPECT_NE(error_of(kValid.substr(0, kValid.size() / 2)).find("test.json"), std::string::npos);
    EXPECT_NE(error_of("[]").find("expected an object"), std::string::npos);
    EXPECT_NE(error_of(replaced(kValid, "qvg-keymap", "qvg-trajectory")).find("format"),
              std::string::npos);
    EXPECT_NE(error_of(replaced(kValid, "\"version\": 1", "\"version\": 2")).find("version"),
              std::string::npos);
    EXPECT_NE(error_of(replaced(kValid, "\"pitch_down\": []", "\"jump\": []"))
                  .find("unknown control \"jump\""),
              std::string::npos);
    EXPECT_NE(error_of(replaced(kValid, ", \"pitch_down\": []", ""))
                  .find("missing control \"pitch_down\""),
              std::string::npos);
    const std::string bad_key = error_of(replaced(kValid, "[\"S\"]", "[\"Foo\"]"));
    EXPECT_NE(bad_key.find("keys.backward[0]"), std::string::npos) << bad_key;
    EXPECT_NE(bad_key.find("\"Foo\""), std::string::npos) << bad_key;
    const std::string dup = error_of(replaced(kValid, "[\"S\"]", "[\"W\"]"));
    EXPECT_NE(dup.find("already bound to \"forward\""), std::string::npos) << dup;
    EXPECT_NE(error_of(replaced(kValid, "[\"S\"]", "\"S\"")).find("expected an array"),
              std::string::npos);
    EXPECT_NE(error_of(replaced(kValid, "[\"S\"]", "[7]")).find("expected a string"),
              std::string::npos);
    EXPECT_NE(error_of(replaced(kValid, "0.5", "-1")).find("sensitivity_deg_per_px"),
              std::string::npos);
    EXPECT_NE(
        error_of(replaced(kValid, "\"invert_y\": true", "\"invert_y\": 1")).find("true or false"),
        std::string::npos);
    EXPECT_NE(error_of(replaced(kValid, "\"invert_y\"", "\"inverty\""))
                  .find("unknown member \"inverty\""),
              std::string::npos);
    try {
        load_key_map("/nonexistent/keymap.json");
        ADD_FAILURE() << "missing file accepted";
    } catch (const InputFileError& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/keymap.json"), std::string::npos);
    }
}

TEST(KeyMap, KeysAndMouseBecomeActions) {
    const KeyMap m = default_key_map();
    InputState in;
    EXPECT_EQ(action_from_input(m, in).label(), 0);
    in.keys_down = {"W", "D"};
    EXPECT_EQ(action_from_input(m, in).label(), 9 * 5);
    in.keys_down = {"S", "Left", "I"};
    EXPECT_EQ(action_from_input(m, in).label(), 9 * 2 + 7);  // S, left + up
    in.keys_down = {"A", "Q"};                               // Q is unbound
    EXPECT_EQ(action_from_input(m, in).label(), 9 * 4);

    // Mouse: 0.15 deg/px, 1.5 degree threshold -> 10 px turns.
    in.keys_down.clear();
    in.mouse_dx_px = 9.0;
    EXPECT_EQ(action_from_input(m, in).label(), 0);
    in.mouse_dx_px = 10.0;
    EXPECT_EQ(action_from_input(m, in).rotation, Rotation::kYawRight);
    in.mouse_dx_px = -40.0;
    in.mouse_dy_px = -20.0;  // mouse moved up
    EXPECT_EQ(action_from_input(m, in).rotation, Rotation::kLeftUp);

    KeyMap inverted = m;
    inverted.mouse.invert_y = true;
    EXPECT_EQ(action_from_input(inverted, in).rotation, Rotation::kLeftDown);
    inverted.mouse.invert_x = true;
    EXPECT_EQ(action_from_input(inverted, in).rotation, Rotation::kRightDown);
    KeyMap sensitive = m;
    sensitive.mouse.sensitivity_deg_per_px = 1.0;
    in.mouse_dx_px = 2.0;
    in.mouse_dy_px = 0.0;
    EXPECT_EQ(action_from_input(sensitive, in).rotation, Rotation::kYawRight);
    KeyMap no_mouse = m;
    no_mouse.mouse.look = false;
    in.mouse_dx_px = 100.0;
    EXPECT_EQ(action_from_input(no_mouse, in).label(), 0);
}

TEST(KeyMap, EveryLabelReachableFromDefaultKeys) {
    const KeyMap m = default_key_map();
    for (int label = 0; label < kActionCount; ++label) {
        const ControlSet c = controls_for(Action::from_label(label));
        InputState in;
        for (int i = 0; i < kControlCount; ++i) {
            if (c.test(static_cast<Control>(i))) {
                in.keys_down.push_back(m.keys[static_cast<std::size_t>(i)].front());
            }
        }
        EXPECT_EQ(action_from_input(m, in).label(), label);
    }
}

TEST(KeyMap, CanonicalKeyNames) {
    EXPECT_EQ(canonical_key_name("a"), "A");
    EXPECT_EQ(canonical_key_name("7"), "7");
    EXPECT_EQ(canonical_key_name("LEFT"), "Left");
    EXPECT_EQ(canonical_key_name("f12"), "F12");
    EXPECT_FALSE(canonical_key_name("F13"));
    EXPECT_FALSE(canonical_key_name(""));
    EXPECT_FALSE(canonical_key_name("-"));
}

}  // namespace
}  // namespace qvg::input
