#pragma once
// Shows RGB8 frames in the GL viewport: each pane is a texture scaled to fit its part of the
// viewport with the frame's aspect ratio kept (letterboxed), with a caption. Drawn through the
// background draw list of the current OverlayRenderer frame, so panels always come on top. Uses
// only OpenGL 1.1 texture calls. Same thread and context rules as OverlayRenderer.

#include <qvg/render/frame_view.h>

#include <string>
#include <vector>

namespace qvg::render {

struct PaneRect {
    float x = 0.0f;
    float y = 0.0f;
    float width = 0.0f;
    float height = 0.0f;
};

// The largest rect of aspect frame_width : frame_height centred in `area`.
PaneRect fit_aspect(const PaneRect& area, int frame_width, int frame_height);

class FramePresenter {
  public:
    FramePresenter() = default;
    // Needs the GL context current.
    ~FramePresenter();
    FramePresenter(const FramePresenter&) = delete;
    FramePresenter& operator=(const FramePresenter&) = delete;

    // Uploads the frame of pane `index` (panes are added as needed). An empty view clears it.
    void upload(std::size_t index, const FrameView& frame);

    struct Caption {
        std::string title;     // drawn above the pane
        std::string subtitle;  // drawn below it, dimmer
    };
    // Lays the panes out side by side in `area`, each fitted with its aspect ratio, and draws
    // them with their captions into the current ImGui frame. Returns where each pane went.
    std::vector<PaneRect> draw(const PaneRect& area, const std::vector<Caption>& captions);

  private:
    struct Pane {
        unsigned texture = 0;
        int width = 0;
        int height = 0;
    };
    std::vector<Pane> panes_;
};

}  // namespace qvg::render
