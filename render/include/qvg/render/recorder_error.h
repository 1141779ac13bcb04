#pragma once
// The one exception type of the recorder: opening, writing, closing or probing an MP4 failed.

#include <stdexcept>

namespace qvg::render {

// The message names the file and, for libav failures, carries av_strerror's text
// (for example "No space left on device").
class RecorderError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace qvg::render
