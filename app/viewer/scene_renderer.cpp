#include "scene_renderer.h"

#include <imgui.h>

#include <QOpenGLContext>
#include <QOpenGLFunctions>

namespace qvg::app {
namespace {

constexpr const char* kFontPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

render::FrameView view_of(const RgbFrame& f) {
    if (f.empty()) return {};
    return {f.rgb.data(), f.width, f.height, f.width * 3};
}

}  // namespace

SceneRenderer::SceneRenderer()
    : overlay_(std::make_unique<render::OverlayRenderer>(kFontPath, 15.0f)) {}

void SceneRenderer::upload(const ViewerFrame& frame, bool reference_pane) {
    presenter_.upload(0, view_of(frame.model));
    presenter_.upload(1, reference_pane ? view_of(frame.reference) : render::FrameView{});
}

void SceneRenderer::paint(const ViewerFrame& frame, const render::OverlayStats& stats,
                          render::OverlayControls& controls, const SceneOptions& options,
                          float width, float height, float pixel_ratio, float dt_s) {
    QOpenGLFunctions* gl = QOpenGLContext::currentContext()->functions();
    gl->glViewport(0, 0, static_cast<int>(width * pixel_ratio),
                   static_cast<int>(height * pixel_ratio));
    gl->glClearColor(0.055f, 0.063f, 0.078f, 1.0f);
    gl->glClear(GL_COLOR_BUFFER_BIT);

    overlay_->begin_frame(width, height, pixel_ratio, dt_s);
    // Panels first: the frames are laid out in the space they leave.
    render::OverlayLayout layout;
    layout.top = 10.0f;
    if (options.overlays && frame.index >= 0) {
        layout = render::draw_overlay_panels(stats, controls, options.panels, width, height);
    }
    std::vector<render::FramePresenter::Caption> captions(2);
    if (frame.index >= 0) {
        captions[0].title = "Model: " + stats.info.model;
        captions[0].subtitle = stats.info.decoder + "  |  frame " + std::to_string(frame.index);
        captions[1].title = "Ground truth: the procedural world, same input";
        captions[1].subtitle = frame.pose_text;
    }
    constexpr float kPad = 12.0f;
    presenter_.draw({layout.left + kPad, layout.top, width - layout.left - layout.right - 2 * kPad,
                     height - layout.top - kPad},
                    captions);
    if (frame.index < 0) {
        const char* text = "starting the model ...";
        ImDrawList* dl = ImGui::GetBackgroundDrawList();
        const ImVec2 size = ImGui::CalcTextSize(text);
        dl->AddText(ImVec2((width - size.x) * 0.5f, (height - size.y) * 0.5f),
                    IM_COL32(190, 200, 215, 255), text);
    }
    overlay_->end_frame();
}

}  // namespace qvg::app
