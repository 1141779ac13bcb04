#include "qt_keys.h"

#include <Qt>

namespace qvg::app {

std::optional<std::string> input_key_name(int qt_key) {
    if (qt_key >= Qt::Key_A && qt_key <= Qt::Key_Z) {
        return std::string(1, static_cast<char>('A' + (qt_key - Qt::Key_A)));
    }
    if (qt_key >= Qt::Key_0 && qt_key <= Qt::Key_9) {
        return std::string(1, static_cast<char>('0' + (qt_key - Qt::Key_0)));
    }
    if (qt_key >= Qt::Key_F1 && qt_key <= Qt::Key_F12) {
        return "F" + std::to_string(qt_key - Qt::Key_F1 + 1);
    }
    switch (qt_key) {
        case Qt::Key_Up:
            return "Up";
        case Qt::Key_Down:
            return "Down";
        case Qt::Key_Left:
            return "Left";
        case Qt::Key_Right:
            return "Right";
        case Qt::Key_Space:
            return "Space";
        case Qt::Key_Shift:
            return "Shift";
        case Qt::Key_Control:
            return "Ctrl";
        case Qt::Key_Alt:
            return "Alt";
        case Qt::Key_Tab:
            return "Tab";
        case Qt::Key_Return:
        case Qt::Key_Enter:
            return "Enter";
        case Qt::Key_Escape:
            return "Escape";
        case Qt::Key_Backspace:
            return "Backspace";
        default:
            return std::nullopt;
    }
}

std::optional<render::OverlayKey> overlay_key(int qt_key) {
    using render::OverlayKey;
    switch (qt_key) {
        case Qt::Key_Tab:
            return OverlayKey::kTab;
        case Qt::Key_Left:
            return OverlayKey::kLeft;
        case Qt::Key_Right:
            return OverlayKey::kRight;
        case Qt::Key_Up:
            return OverlayKey::kUp;
        case Qt::Key_Down:
            return OverlayKey::kDown;
        case Qt::Key_PageUp:
            return OverlayKey::kPageUp;
        case Qt::Key_PageDown:
            return OverlayKey::kPageDown;
        case Qt::Key_Home:
            return OverlayKey::kHome;
        case Qt::Key_End:
            return OverlayKey::kEnd;
        case Qt::Key_Insert:
            return OverlayKey::kInsert;
        case Qt::Key_Delete:
            return OverlayKey::kDelete;
        case Qt::Key_Backspace:
            return OverlayKey::kBackspace;
        case Qt::Key_Space:
            return OverlayKey::kSpace;
        case Qt::Key_Return:
        case Qt::Key_Enter:
            return OverlayKey::kEnter;
        case Qt::Key_Escape:
            return OverlayKey::kEscape;
        case Qt::Key_A:
            return OverlayKey::kA;
        case Qt::Key_C:
            return OverlayKey::kC;
        case Qt::Key_V:
            return OverlayKey::kV;
        case Qt::Key_X:
            return OverlayKey::kX;
        case Qt::Key_Y:
            return OverlayKey::kY;
        case Qt::Key_Z:
            return OverlayKey::kZ;
        default:
            return std::nullopt;
    }
}

}  // namespace qvg::app
