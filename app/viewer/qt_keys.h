#pragma once
// Qt key codes -> the names input/ key maps use and the keys the overlay's widgets use. The one
// place where Qt's keys are translated.

#include <qvg/render/overlay_renderer.h>

#include <optional>
#include <string>

namespace qvg::app {

// "W", "Up", "Space", "F5", ... (input::canonical_key_name spellings), or nothing.
std::optional<std::string> input_key_name(int qt_key);
std::optional<render::OverlayKey> overlay_key(int qt_key);

}  // namespace qvg::app
