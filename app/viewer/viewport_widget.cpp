#include "viewport_widget.h"

#include "generation_worker.h"
#include "qt_keys.h"

#include <qvg/render/recorder.h>

#include <QCursor>
#include <QImage>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QOpenGLContext>
#include <QOpenGLFunctions>
#include <QWheelEvent>

#include <chrono>
#include <vector>

namespace qvg::app {
namespace {

std::optional<render::OverlayMouseButton> overlay_button(Qt::MouseButton b) {
    switch (b) {
        case Qt::LeftButton:
            return render::OverlayMouseButton::kLeft;
        case Qt::RightButton:
            return render::OverlayMouseButton::kRight;
        case Qt::MiddleButton:
            return render::OverlayMouseButton::kMiddle;
        default:
            return std::nullopt;
    }
}

}  // namespace

ViewportWidget::ViewportWidget(QWidget* parent) : QOpenGLWidget(parent) {
    setFocusPolicy(Qt::StrongFocus);
    setMouseTracking(true);
    setMinimumSize(320, 200);
    uptime_.start();
    frame_clock_.start();
}

ViewportWidget::~ViewportWidget() {
    // The scene's GL objects go with the context that made them.
    makeCurrent();
    scene_.reset();
    doneCurrent();
}

void ViewportWidget::set_worker(GenerationWorker* worker) {
    worker_ = worker;
    update();
}

void ViewportWidget::set_scene_options(const SceneOptions& options) {
    options_ = options;
    reupload_ = true;
    update();
}

void ViewportWidget::set_overlay_recorder(std::shared_ptr<render::Recorder> recorder, int width,
                                          int height) {
    overlay_recorder_ = std::move(recorder);
    recorder_width_ = width;
    recorder_height_ = height;
}

void ViewportWidget::set_recording_label(const std::string& label) {
    recording_label_ = label;
    update();
}

void ViewportWidget::initializeGL() {
    try {
        scene_ = std::make_unique<SceneRenderer>();
    } catch (const std::exception& e) {
        gl_error_ = e.what();
        emit status_message(QString::fromStdString("overlays unavailable: " + gl_error_));
    }
}

void ViewportWidget::paintGL() {
    if (!scene_) {
        QOpenGLFunctions* gl = context()->functions();
        gl->glClearColor(0.3f, 0.05f, 0.05f, 1.0f);
        gl->glClear(GL_COLOR_BUFFER_BIT);
        return;
    }
    bool fresh = false;
    if (worker_ != nullptr && worker_->frames().acquire()) fresh = true;
    const ViewerFrame& frame = worker_ != nullptr ? worker_->frames().front() : empty_frame_;
    const qint64 now_ms = uptime_.elapsed();
    if (fresh || reupload_) {
        scene_->upload(frame, options_.reference_pane);
        reupload_ = false;
    }
    if (fresh) {
        present_ms_.push_back(now_ms);
        while (present_ms_.size() > 1 && now_ms - present_ms_.front() > 2000) {
            present_ms_.pop_front();
        }
        if (frame.input_changed_at) {
            latency_ms_ = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - *frame.input_changed_at)
                              .count();
        }
    }
    render::OverlayStats stats = frame.stats;
    stats.performance.latency_ms = latency_ms_;
    if (present_ms_.size() >= 2 && present_ms_.back() > present_ms_.front()) {
        stats.performance.displayed_fps =
            1000.0 * static_cast<double>(present_ms_.size() - 1) /
            static_cast<double>(present_ms_.back() - present_ms_.front());
    }
    if (overlay_recorder_) {
        stats.performance.dropped_record = overlay_recorder_->stats().frames_dropped;
    }
    stats.info.pointer_locked = locked_;
    stats.info.recording = recording_label_;
    const float dt_s = static_cast<float>(frame_clock_.restart()) / 1000.0f;
    scene_->paint(frame, stats, controls_, options_, static_cast<float>(width()),
                  static_cast<float>(height()), static_cast<float>(devicePixelRatioF()), dt_s);
    if (controls_.requests != render::OverlayRequest::kNone) emit controls_requested();
    if (fresh && overlay_recorder_) record_viewport();
}

void ViewportWidget::record_viewport() {
    const int w = static_cast<int>(width() * devicePixelRatioF());
    const int h = static_cast<int>(height() * devicePixelRatioF());
    QImage image(w, h, QImage::Format_RGB888);
    QOpenGLFunctions* gl = context()->functions();
    gl->glPixelStorei(GL_PACK_ALIGNMENT, 1);
    gl->glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, image.bits());
    gl->glPixelStorei(GL_PACK_ALIGNMENT, 4);
    // GL rows run bottom-up; the recorder has a fixed size, so a resized window is scaled to it.
    image = image.mirrored(false, true);
    try {
        const QImage sized = image.width() == recorder_width_ && image.height() == recorder_height_
                                 ? image
                                 : image.scaled(recorder_width_, recorder_height_,
                                                Qt::IgnoreAspectRatio, Qt::SmoothTransformation);
        overlay_recorder_->push({sized.constBits(), sized.width(), sized.height(),
                                 static_cast<int>(sized.bytesPerLine())});
    } catch (const std::exception& e) {
        overlay_recorder_.reset();
        emit status_message(QString::fromStdString(std::string("recording stopped: ") + e.what()));
    }
}

void ViewportWidget::publish_keys() {
    if (worker_ != nullptr) {
        worker_->input().set_keys({held_keys_.begin(), held_keys_.end()});
    }
}

void ViewportWidget::forward_modifiers(Qt::KeyboardModifiers mods) {
    if (!scene_) return;
    scene_->overlay().modifiers({mods.testFlag(Qt::ControlModifier),
                                 mods.testFlag(Qt::ShiftModifier), mods.testFlag(Qt::AltModifier),
                                 mods.testFlag(Qt::MetaModifier)});
}

void ViewportWidget::keyPressEvent(QKeyEvent* event) {
    forward_modifiers(event->modifiers());
    if (scene_ && scene_->overlay().wants_keyboard()) {
        if (auto k = overlay_key(event->key())) scene_->overlay().key(*k, true);
        for (const QChar c : event->text()) {
            if (c.isPrint()) scene_->overlay().text(c.unicode());
        }
        update();
        return;
    }
    if (event->key() == Qt::Key_Escape && locked_) {
        release_pointer();
        return;
    }
    if (event->isAutoRepeat()) return;
    if (auto name = input_key_name(event->key())) {
        held_keys_.insert(*name);
        publish_keys();
    } else {
        QOpenGLWidget::keyPressEvent(event);
    }
}

void ViewportWidget::keyReleaseEvent(QKeyEvent* event) {
    forward_modifiers(event->modifiers());
    if (scene_) {
        if (auto k = overlay_key(event->key())) scene_->overlay().key(*k, false);
    }
    if (event->isAutoRepeat()) return;
    if (auto name = input_key_name(event->key())) {
        if (held_keys_.erase(*name) > 0) publish_keys();
    } else {
        QOpenGLWidget::keyReleaseEvent(event);
    }
}

void ViewportWidget::mousePressEvent(QMouseEvent* event) {
    if (locked_) return;
    const bool to_overlay = scene_ && scene_->overlay().wants_mouse();
    if (!to_overlay && event->button() == Qt::LeftButton) {
        lock_pointer();
        return;
    }
    if (scene_) {
        if (auto b = overlay_button(event->button())) scene_->overlay().mouse_button(*b, true);
    }
    update();
}

void ViewportWidget::mouseReleaseEvent(QMouseEvent* event) {
    if (scene_) {
        if (auto b = overlay_button(event->button())) scene_->overlay().mouse_button(*b, false);
    }
    update();
}

void ViewportWidget::mouseMoveEvent(QMouseEvent* event) {
    if (locked_) {
        const QPointF delta = event->globalPosition() - QPointF(lock_centre_);
        if (delta.x() != 0.0 || delta.y() != 0.0) {
            if (worker_ != nullptr) worker_->input().add_mouse(delta.x(), delta.y());
            QCursor::setPos(lock_centre_);
        }
        return;
    }
    if (scene_) {
        scene_->overlay().mouse_move(static_cast<float>(event->position().x()),
                                     static_cast<float>(event->position().y()));
    }
    update();
}

void ViewportWidget::wheelEvent(QWheelEvent* event) {
    if (scene_) {
        const QPoint steps = event->angleDelta();  // 120 per notch
        scene_->overlay().mouse_wheel(static_cast<float>(steps.x()) / 120.0f,
                                      static_cast<float>(steps.y()) / 120.0f);
    }
    update();
}

void ViewportWidget::focusOutEvent(QFocusEvent* event) {
    // Keys released while another window had the focus never arrive: forget them all.
    held_keys_.clear();
    publish_keys();
    release_pointer();
    if (scene_) scene_->overlay().focus_lost();
    QOpenGLWidget::focusOutEvent(event);
}

bool ViewportWidget::event(QEvent* event) {
    // Tab would move the focus out of the viewport; keep it for the key map and the panels.
    if (event->type() == QEvent::KeyPress && static_cast<QKeyEvent*>(event)->key() == Qt::Key_Tab) {
        keyPressEvent(static_cast<QKeyEvent*>(event));
        return true;
    }
    return QOpenGLWidget::event(event);
}

void ViewportWidget::lock_pointer() {
    locked_ = true;
    setCursor(Qt::BlankCursor);
    grabMouse();
    lock_centre_ = mapToGlobal(rect().center());
    QCursor::setPos(lock_centre_);
    emit status_message("mouse look on: move the mouse to turn, Esc releases the pointer");
    update();
}

void ViewportWidget::release_pointer() {
    if (!locked_) return;
    locked_ = false;
    releaseMouse();
    unsetCursor();
    emit status_message("pointer released: click the view for mouse look");
    update();
}

}  // namespace qvg::app
