#pragma once
// The main window: viewport, menus, status bar, settings, model loading with a progress dialog,
// recording and screenshots. Owns the generation worker and the recorder.

#include "cache_settings.h"
#include "model_loader.h"
#include "viewer_options.h"

#include <qvg/input/key_map.h>

#include <QMainWindow>
#include <QSettings>

#include <chrono>
#include <memory>
#include <thread>

class QAction;
class QLabel;
class QProgressDialog;
class QTimer;

namespace qvg::render {
class Recorder;
}

namespace qvg::app {

class GenerationWorker;
class ViewportWidget;

class MainWindow : public QMainWindow {
    Q_OBJECT

  public:
    MainWindow(ViewerOptions options, input::KeyMap key_map, QWidget* parent = nullptr);
    ~MainWindow() override;

  protected:
    void closeEvent(QCloseEvent* event) override;

  private:
    void build_menus();
    void open_model();
    void open_text_embedding();
    void open_vae();
    void use_test_model();
    void load_checkpoint(const ModelPaths& paths);
    void toggle_recording(bool on);
    bool start_recording(const QString& path);
    void stop_recording();
    void screenshot(bool whole_window);
    void save_trajectory();
    void replay_trajectory();
    void apply_controls();
    void poll_worker();
    void set_mouse_sensitivity();
    void apply_mouse_settings();
    void update_scene_options();
    void show_error(const QString& title, const QString& text);
    void load_settings();
    void save_settings();
    void sync_controls();
    // Hands the worker `model`, with its default cache unless one was chosen.
    void start_model(std::shared_ptr<const LoadedModel> model);

    ViewerOptions options_;
    input::KeyMap key_map_;
    QSettings settings_;
    CacheSettings cache_;
    // Whether the cache was chosen (--cache, the controls, or a choice saved before); if not,
    // each model starts with its own default (default_cache_settings).
    bool cache_chosen_ = false;
    std::uint64_t seed_ = 0;
    std::shared_ptr<const LoadedModel> model_;
    ModelPaths paths_;
    ViewportWidget* viewport_ = nullptr;
    std::unique_ptr<GenerationWorker> worker_;
    std::shared_ptr<render::Recorder> recorder_;
    QString recording_path_;
    // --record given with --model: recording starts once that model has loaded (or failed to).
    QString pending_record_;
    std::chrono::steady_clock::time_point recording_started_;
    std::thread loader_;
    QProgressDialog* progress_ = nullptr;
    QTimer* poll_ = nullptr;
    std::uint64_t last_message_serial_ = 0;
    bool finishing_ = false;

    QLabel* model_label_ = nullptr;
    QLabel* frames_label_ = nullptr;
    QLabel* recording_label_ = nullptr;
    QAction* record_action_ = nullptr;
    QAction* record_overlays_action_ = nullptr;
    QAction* overlays_action_ = nullptr;
    QAction* memory_action_ = nullptr;
    QAction* quality_action_ = nullptr;
    QAction* performance_action_ = nullptr;
    QAction* controls_action_ = nullptr;
    QAction* reference_action_ = nullptr;
    QAction* pause_action_ = nullptr;
    QAction* invert_x_action_ = nullptr;
    QAction* invert_y_action_ = nullptr;
};

}  // namespace qvg::app
