#pragma once
// The OpenGL viewport: shows the newest frame of the generation thread with the overlays, turns
// keys and mouse motion into the input mailbox (or into overlay input when a panel has the
// focus), and locks the pointer for mouse look (click captures, Esc releases).

#include "scene_renderer.h"

#include <QElapsedTimer>
#include <QOpenGLWidget>
#include <QPoint>

#include <deque>
#include <memory>
#include <set>
#include <string>

namespace qvg::render {
class Recorder;
}

namespace qvg::app {

class GenerationWorker;

class ViewportWidget : public QOpenGLWidget {
    Q_OBJECT

  public:
    explicit ViewportWidget(QWidget* parent = nullptr);
    ~ViewportWidget() override;

    void set_worker(GenerationWorker* worker);  // not owned; may be null
    void set_scene_options(const SceneOptions& options);
    const SceneOptions& scene_options() const { return options_; }
    render::OverlayControls& controls() { return controls_; }
    // Frames of the viewport with overlays go here while set (burned-in recording).
    // width x height is the recorder's frame size.
    void set_overlay_recorder(std::shared_ptr<render::Recorder> recorder, int width, int height);
    void set_recording_label(const std::string& label);
    bool pointer_locked() const { return locked_; }
    void release_pointer();

  signals:
    void controls_requested();  // the controls panel has requests (controls().requests)
    void status_message(const QString& text);

  protected:
    void initializeGL() override;
    void paintGL() override;
    void keyPressEvent(QKeyEvent* event) override;
    void keyReleaseEvent(QKeyEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void focusOutEvent(QFocusEvent* event) override;
    bool event(QEvent* event) override;

  private:
    void lock_pointer();
    void publish_keys();
    void forward_modifiers(Qt::KeyboardModifiers mods);
    void record_viewport();

    std::unique_ptr<SceneRenderer> scene_;
    GenerationWorker* worker_ = nullptr;
    ViewerFrame empty_frame_;
    SceneOptions options_;
    render::OverlayControls controls_;
    bool reupload_ = false;
    std::set<std::string> held_keys_;
    bool locked_ = false;
    QPoint lock_centre_;
    QElapsedTimer frame_clock_;
    std::deque<qint64> present_ms_;  // when the last frames were presented, for shown fps
    QElapsedTimer uptime_;
    double latency_ms_ = -1.0;
    std::shared_ptr<render::Recorder> overlay_recorder_;
    int recorder_width_ = 0;
    int recorder_height_ = 0;
    std::string recording_label_;
    std::string gl_error_;
};

}  // namespace qvg::app
