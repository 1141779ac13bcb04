#pragma once
// What the generation thread publishes for the UI: the newest video frame of the model and of the
// ground-truth reference, and the numbers for the overlays at the time it was made.

#include <qvg/render/overlay.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qvg::app {

struct RgbFrame {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> rgb;  // [height, width, 3], rows packed
    bool empty() const { return width <= 0 || height <= 0; }
};

struct ViewerFrame {
    std::int64_t index = -1;  // video frame number since the last reset
    RgbFrame model;           // the model's output
    RgbFrame reference;       // the procedural world seen from the same pose
    std::string pose_text;    // where the camera is, for the reference pane
    render::OverlayStats stats;
    // Set on the first frame made after an input change: when that change happened.
    std::optional<std::chrono::steady_clock::time_point> input_changed_at;
};

}  // namespace qvg::app
