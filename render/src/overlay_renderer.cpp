// ImGui 1.86 still takes input through io.KeysDown[] with io.KeyMap[] naming the indices of the
// keys its widgets use, so OverlayKey values double as those indices.

#include <qvg/render/overlay_renderer.h>

#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>

#include <array>
#include <cfloat>
#include <filesystem>
#include <stdexcept>

namespace qvg::render {

struct OverlayRenderer::State {
    ImGuiContext* context = nullptr;
    bool backend_ready = false;
    // ImGui 1.86 samples io.MouseDown once per frame; a click whose press and release both land
    // between two frames would vanish. Such a release is held back until a frame saw the press.
    std::array<bool, 3> pressed_since_frame{};
    std::array<bool, 3> release_after_frame{};
};

namespace {

class ContextScope {
  public:
    explicit ContextScope(ImGuiContext* context) : previous_(ImGui::GetCurrentContext()) {
        ImGui::SetCurrentContext(context);
    }
    ~ContextScope() { ImGui::SetCurrentContext(previous_); }
    ContextScope(const ContextScope&) = delete;
    ContextScope& operator=(const ContextScope&) = delete;

  private:
    ImGuiContext* previous_;
};

void map_keys(ImGuiIO& io) {
    const auto idx = [](OverlayKey k) { return static_cast<int>(k); };
    io.KeyMap[ImGuiKey_Tab] = idx(OverlayKey::kTab);
    io.KeyMap[ImGuiKey_LeftArrow] = idx(OverlayKey::kLeft);
    io.KeyMap[ImGuiKey_RightArrow] = idx(OverlayKey::kRight);
    io.KeyMap[ImGuiKey_UpArrow] = idx(OverlayKey::kUp);
    io.KeyMap[ImGuiKey_DownArrow] = idx(OverlayKey::kDown);
    io.KeyMap[ImGuiKey_PageUp] = idx(OverlayKey::kPageUp);
    io.KeyMap[ImGuiKey_PageDown] = idx(OverlayKey::kPageDown);
    io.KeyMap[ImGuiKey_Home] = idx(OverlayKey::kHome);
    io.KeyMap[ImGuiKey_End] = idx(OverlayKey::kEnd);
    io.KeyMap[ImGuiKey_Insert] = idx(OverlayKey::kInsert);
    io.KeyMap[ImGuiKey_Delete] = idx(OverlayKey::kDelete);
    io.KeyMap[ImGuiKey_Backspace] = idx(OverlayKey::kBackspace);
    io.KeyMap[ImGuiKey_Space] = idx(OverlayKey::kSpace);
    io.KeyMap[ImGuiKey_Enter] = idx(OverlayKey::kEnter);
    io.KeyMap[ImGuiKey_Escape] = idx(OverlayKey::kEscape);
    io.KeyMap[ImGuiKey_A] = idx(OverlayKey::kA);
    io.KeyMap[ImGuiKey_C] = idx(OverlayKey::kC);
    io.KeyMap[ImGuiKey_V] = idx(OverlayKey::kV);
    io.KeyMap[ImGuiKey_X] = idx(OverlayKey::kX);
    io.KeyMap[ImGuiKey_Y] = idx(OverlayKey::kY);
    io.KeyMap[ImGuiKey_Z] = idx(OverlayKey::kZ);
}

void apply_style() {
    ImGui::StyleColorsDark();
    ImGuiStyle& style = ImGui::GetStyle();
    style.WindowRounding = 6.0f;
    style.FrameRounding = 4.0f;
    style.GrabRounding = 4.0f;
    style.WindowBorderSize = 1.0f;
    style.WindowPadding = ImVec2(10.0f, 8.0f);
    style.ItemSpacing = ImVec2(8.0f, 5.0f);
    ImVec4* c = style.Colors;
    c[ImGuiCol_WindowBg] = ImVec4(0.07f, 0.08f, 0.10f, 0.86f);
    c[ImGuiCol_TitleBg] = ImVec4(0.10f, 0.13f, 0.18f, 0.95f);
    c[ImGuiCol_TitleBgActive] = ImVec4(0.13f, 0.20f, 0.30f, 0.98f);
    c[ImGuiCol_TitleBgCollapsed] = ImVec4(0.10f, 0.13f, 0.18f, 0.80f);
    c[ImGuiCol_Border] = ImVec4(0.30f, 0.38f, 0.48f, 0.55f);
    c[ImGuiCol_PlotHistogram] = ImVec4(0.30f, 0.68f, 0.95f, 1.0f);
    c[ImGuiCol_PlotLines] = ImVec4(0.45f, 0.80f, 1.0f, 1.0f);
}

}  // namespace

OverlayRenderer::OverlayRenderer(const std::string& font_path, float font_size_px)
    : state_(std::make_unique<State>()) {
    IMGUI_CHECKVERSION();
    ImGuiContext* previous = ImGui::GetCurrentContext();
    state_->context = ImGui::CreateContext();
    ImGui::SetCurrentContext(state_->context);
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;  // panel placement is the app's business, not a file in the cwd
    io.LogFilename = nullptr;
    io.BackendPlatformName = "qvg";
    map_keys(io);
    apply_style();
    std::error_code ec;
    if (!font_path.empty() && std::filesystem::is_regular_file(font_path, ec)) {
        io.Fonts->AddFontFromFileTTF(font_path.c_str(), font_size_px);
    }
    // GLSL 1.30 runs on GL 3.0 and on every compatibility profile Mesa's software renderer offers.
    state_->backend_ready = ImGui_ImplOpenGL3_Init("#version 130");
    if (!state_->backend_ready) {
        ImGui::DestroyContext(state_->context);
        ImGui::SetCurrentContext(previous);
        throw std::runtime_error("the ImGui OpenGL 3 backend could not start (needs OpenGL 3.0)");
    }
    ImGui::SetCurrentContext(previous == state_->context ? nullptr : previous);
}

OverlayRenderer::~OverlayRenderer() {
    {
        ContextScope scope(state_->context);
        if (state_->backend_ready) ImGui_ImplOpenGL3_Shutdown();
    }
    ImGui::DestroyContext(state_->context);
}

void OverlayRenderer::mouse_move(float x, float y) {
    ContextScope scope(state_->context);
    ImGui::GetIO().MousePos = ImVec2(x, y);
}

void OverlayRenderer::mouse_button(OverlayMouseButton button, bool down) {
    ContextScope scope(state_->context);
    const auto b = static_cast<std::size_t>(button);
    if (down) {
        state_->pressed_since_frame[b] = true;
        state_->release_after_frame[b] = false;
    } else if (state_->pressed_since_frame[b]) {
        state_->release_after_frame[b] = true;
        return;
    }
    ImGui::GetIO().MouseDown[b] = down;
}

void OverlayRenderer::mouse_wheel(float dx_steps, float dy_steps) {
    ContextScope scope(state_->context);
    ImGuiIO& io = ImGui::GetIO();
    io.MouseWheelH += dx_steps;
    io.MouseWheel += dy_steps;
}

void OverlayRenderer::key(OverlayKey k, bool down) {
    ContextScope scope(state_->context);
    ImGui::GetIO().KeysDown[static_cast<int>(k)] = down;
}

void OverlayRenderer::modifiers(const OverlayModifiers& mods) {
    ContextScope scope(state_->context);
    ImGuiIO& io = ImGui::GetIO();
    io.KeyCtrl = mods.ctrl;
    io.KeyShift = mods.shift;
    io.KeyAlt = mods.alt;
    io.KeySuper = mods.super;
}

void OverlayRenderer::text(std::uint32_t codepoint) {
    ContextScope scope(state_->context);
    ImGui::GetIO().AddInputCharacter(codepoint);
}

void OverlayRenderer::focus_lost() {
    ContextScope scope(state_->context);
    ImGuiIO& io = ImGui::GetIO();
    for (bool& k : io.KeysDown) k = false;
    for (bool& b : io.MouseDown) b = false;
    io.KeyCtrl = io.KeyShift = io.KeyAlt = io.KeySuper = false;
    io.MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
}

bool OverlayRenderer::wants_mouse() const {
    ContextScope scope(state_->context);
    return ImGui::GetIO().WantCaptureMouse;
}

bool OverlayRenderer::wants_keyboard() const {
    ContextScope scope(state_->context);
    return ImGui::GetIO().WantCaptureKeyboard;
}

void OverlayRenderer::begin_frame(float width, float height, float pixel_ratio, float dt_s) {
    ImGui::SetCurrentContext(state_->context);
    ImGuiIO& io = ImGui::GetIO();
    io.DisplaySize = ImVec2(width, height);
    io.DisplayFramebufferScale = ImVec2(pixel_ratio, pixel_ratio);
    io.DeltaTime = dt_s > 0.0f ? dt_s : 1.0f / 60.0f;
    ImGui_ImplOpenGL3_NewFrame();
    ImGui::NewFrame();
    for (std::size_t b = 0; b < state_->pressed_since_frame.size(); ++b) {
        state_->pressed_since_frame[b] = false;
        if (state_->release_after_frame[b]) io.MouseDown[b] = false;  // seen by the next frame
        state_->release_after_frame[b] = false;
    }
}

void OverlayRenderer::end_frame() {
    ImGui::SetCurrentContext(state_->context);
    ImGui::Render();
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
}

}  // namespace qvg::render
