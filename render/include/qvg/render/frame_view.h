#pragma once
// A borrowed RGB image: what the recorder accepts from whoever produced the frame.

#include <cstdint>

namespace qvg::render {

// RGB8 interleaved (R, G, B bytes per pixel), rows stride_bytes apart (>= width * 3).
// The view does not own data; it must stay valid for the duration of the call it is passed to.
struct FrameView {
    const std::uint8_t* data = nullptr;
    int width = 0;
    int height = 0;
    int stride_bytes = 0;
};

}  // namespace qvg::render
