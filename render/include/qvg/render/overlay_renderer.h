#pragma once
// One Dear ImGui context drawn into the current OpenGL context (GL 3.0+ or a compatibility
// profile), and the plain input events that feed it. The windowing toolkit stays outside render/:
// the app translates its own events into these calls. Not thread-safe (ImGui is not): create,
// feed and draw it on the thread that owns the GL context, with that context current.

#include <cstdint>
#include <memory>
#include <string>

namespace qvg::render {

// The keys ImGui's widgets use (navigation and text editing).
enum class OverlayKey {
    kTab,
    kLeft,
    kRight,
    kUp,
    kDown,
    kPageUp,
    kPageDown,
    kHome,
    kEnd,
    kInsert,
    kDelete,
    kBackspace,
    kSpace,
    kEnter,
    kEscape,
    kA,  // select all, copy, paste, cut, undo, redo with Ctrl
    kC,
    kV,
    kX,
    kY,
    kZ,
};

enum class OverlayMouseButton { kLeft, kRight, kMiddle };

struct OverlayModifiers {
    bool ctrl = false;
    bool shift = false;
    bool alt = false;
    bool super = false;
};

class OverlayRenderer {
  public:
    // Creates the ImGui context and its GL objects in the current GL context. `font_path`, when it
    // names a readable TrueType file, replaces ImGui's built-in font. Throws std::runtime_error
    // when the GL backend cannot be initialised.
    explicit OverlayRenderer(const std::string& font_path = {}, float font_size_px = 15.0f);
    // Needs the same GL context current.
    ~OverlayRenderer();
    OverlayRenderer(const OverlayRenderer&) = delete;
    OverlayRenderer& operator=(const OverlayRenderer&) = delete;

    // Input, in logical pixels of the viewport (top-left origin).
    void mouse_move(float x, float y);
    void mouse_button(OverlayMouseButton button, bool down);
    void mouse_wheel(float dx_steps, float dy_steps);
    void key(OverlayKey key, bool down);
    void modifiers(const OverlayModifiers& mods);
    void text(std::uint32_t codepoint);
    void focus_lost();

    // Whether the last frame's widgets want the mouse / keyboard (then the app should not use
    // the event for camera control).
    bool wants_mouse() const;
    bool wants_keyboard() const;

    // Starts a frame for a viewport of width x height logical pixels drawn at `pixel_ratio`
    // framebuffer pixels per logical pixel, `dt_s` seconds after the previous one. Makes this
    // renderer's ImGui context current.
    void begin_frame(float width, float height, float pixel_ratio, float dt_s);
    // Renders the frame's draw lists into the currently bound framebuffer.
    void end_frame();

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace qvg::render
