#pragma once
// Draws one ViewerFrame (model pane, reference pane, captions) and the overlay panels into the
// current GL context. Shared by the window's viewport and the offscreen --headless-screenshot
// path, so both show the same picture. GL thread only.

#include "viewer_frame.h"

#include <qvg/render/frame_presenter.h>
#include <qvg/render/overlay.h>
#include <qvg/render/overlay_renderer.h>

#include <memory>

namespace qvg::app {

struct SceneOptions {
    bool overlays = true;  // all panels and the info bar
    render::OverlayVisibility panels;
    bool reference_pane = true;  // the ground-truth pane next to the model
};

class SceneRenderer {
  public:
    SceneRenderer();  // needs the GL context current

    // Uploads the frame's pictures (call when a new frame was acquired or panes were toggled).
    void upload(const ViewerFrame& frame, bool reference_pane);
    // Clears and draws a width x height (logical pixels) viewport. `stats` are the frame's with
    // the UI's own numbers (latency, shown fps, pointer lock, recording) filled in.
    void paint(const ViewerFrame& frame, const render::OverlayStats& stats,
               render::OverlayControls& controls, const SceneOptions& options, float width,
               float height, float pixel_ratio, float dt_s);

    render::OverlayRenderer& overlay() { return *overlay_; }

  private:
    std::unique_ptr<render::OverlayRenderer> overlay_;
    render::FramePresenter presenter_;
};

}  // namespace qvg::app
