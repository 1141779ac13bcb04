#pragma once
// --headless-screenshot: generate frames without showing a window, then draw the newest one with
// the overlays into an offscreen framebuffer and save it as PNG. Needs a GL-capable display
// connection (a real one or Xvfb) but no visible window.

#include "model_loader.h"
#include "viewer_options.h"

#include <qvg/input/key_map.h>

#include <memory>

namespace qvg::app {

// Returns the process exit code: 0 saved, 1 generation or GL failed, 2 the PNG was not written.
int run_headless(const ViewerOptions& options, const input::KeyMap& key_map,
                 std::shared_ptr<const LoadedModel> model);

}  // namespace qvg::app
