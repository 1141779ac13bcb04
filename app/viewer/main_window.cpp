#include "main_window.h"

#include "generation_worker.h"
#include "viewport_widget.h"

#include <qvg/input/trajectory.h>
#include <qvg/render/recorder.h>

#include <QApplication>
#include <QCloseEvent>
#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QImage>
#include <QImageWriter>
#include <QInputDialog>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QProgressDialog>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTimer>

#include <iostream>

namespace qvg::app {
namespace {

constexpr int kPollMs = 100;

QString q(const std::string& s) { return QString::fromStdString(s); }

const char* kControlsHelp =
    "<h3>Moving</h3>"
    "<table cellpadding='3'>"
    "<tr><td><b>W A S D</b></td><td>walk forward / left / back / right</td></tr>"
    "<tr><td><b>Mouse</b></td><td>look around (click the view to capture the pointer, "
    "<b>Esc</b> releases it)</td></tr>"
    "<tr><td><b>Arrow keys</b> or <b>I J K L</b></td><td>look up / left / down / right "
    "without the mouse</td></tr>"
    "</table>"
    "<h3>Viewer</h3>"
    "<table cellpadding='3'>"
    "<tr><td><b>F1</b></td><td>this help</td></tr>"
    "<tr><td><b>F2</b></td><td>show or hide the overlays</td></tr>"
    "<tr><td><b>F5 / F6 / F7</b></td><td>pause, one step while paused, reset</td></tr>"
    "<tr><td><b>Ctrl+R</b></td><td>record to MP4 (again to stop)</td></tr>"
    "<tr><td><b>F12</b></td><td>screenshot (PNG)</td></tr>"
    "</table>"
    "<p>One action is taken per latent frame: the keys held and the mouse motion since the "
    "previous block decide it. The stage slider in the Controls panel applies at once.</p>";

}  // namespace

MainWindow::MainWindow(ViewerOptions options, input::KeyMap key_map, QWidget* parent)
    : QMainWindow(parent),
      options_(std::move(options)),
      key_map_(std::move(key_map)),
      settings_("qvg", "qvg-world") {
    setWindowTitle("qvg-world");
    load_settings();
    if (options_.cache) {
        cache_ = *options_.cache;
        cache_chosen_ = true;
    }
    if (options_.seed) seed_ = *options_.seed;
    apply_mouse_settings();

    viewport_ = new ViewportWidget(this);
    setCentralWidget(viewport_);
    build_menus();

    model_label_ = new QLabel(this);
    frames_label_ = new QLabel(this);
    recording_label_ = new QLabel(this);
    recording_label_->setStyleSheet("color: #e04848; font-weight: bold;");
    statusBar()->addPermanentWidget(recording_label_);
    statusBar()->addPermanentWidget(model_label_);
    statusBar()->addPermanentWidget(frames_label_);

    // The built-in model starts at once; a checkpoint given on the command line replaces it
    // when it has loaded.
    model_ = make_test_model(0, options_.device);
    if (!cache_chosen_) cache_ = default_cache_settings(*model_);
    WorkerOptions wo;
    wo.seed = seed_;
    wo.cache = cache_;
    wo.fps = options_.fps;
    wo.key_map = key_map_;
    wo.stop_after_frames = options_.frames;
    wo.paused = options_.paused;
    if (!options_.replay.empty()) {
        try {
            wo.replay = input::load_trajectory(options_.replay);
            seed_ = wo.replay->seed;
            wo.seed = seed_;
        } catch (const std::exception& e) {
            show_error("qvg-world: cannot replay", q(e.what()));
        }
    }
    model_label_->setText(q(model_->label));
    worker_ = std::make_unique<GenerationWorker>(model_, wo, [this] {
        QMetaObject::invokeMethod(viewport_, qOverload<>(&QWidget::update), Qt::QueuedConnection);
    });
    viewport_->set_worker(worker_.get());
    sync_controls();
    update_scene_options();
    connect(viewport_, &ViewportWidget::controls_requested, this, &MainWindow::apply_controls);
    connect(viewport_, &ViewportWidget::status_message, this,
            [this](const QString& text) { statusBar()->showMessage(text, 5000); });

    poll_ = new QTimer(this);
    connect(poll_, &QTimer::timeout, this, &MainWindow::poll_worker);
    poll_->start(kPollMs);

    if (!options_.model.empty()) {
        paths_.model = options_.model;
        paths_.text_embedding = options_.text_embedding;
        paths_.vae = options_.vae;
        paths_.device = options_.device;
        // Recording waits for that model, so its frames (not the test model's shown while it
        // loads) go into the file.
        if (!options_.record.empty()) pending_record_ = q(options_.record);
        load_checkpoint(paths_);
    }
    if (!options_.record.empty() && pending_record_.isEmpty()) {
        if (start_recording(q(options_.record))) record_action_->setChecked(true);
    }
    viewport_->setFocus();
}

MainWindow::~MainWindow() {
    if (loader_.joinable()) loader_.join();
    stop_recording();
    viewport_->set_worker(nullptr);
    worker_.reset();
}

void MainWindow::build_menus() {
    QMenu* file = menuBar()->addMenu("&File");
    file->addAction("&Open Model...", QKeySequence::Open, this, &MainWindow::open_model);
    file->addAction("Open &Text Embedding...", this, &MainWindow::open_text_embedding);
    file->addAction("Open &VAE...", this, &MainWindow::open_vae);
    file->addAction("Use the &Built-in Test Model", this, &MainWindow::use_test_model);
    file->addSeparator();
    record_action_ = file->addAction("&Record to MP4", QKeySequence("Ctrl+R"));
    record_action_->setCheckable(true);
    connect(record_action_, &QAction::toggled, this, &MainWindow::toggle_recording);
    record_overlays_action_ = file->addAction("Record With &Overlays Burned In");
    record_overlays_action_->setCheckable(true);
    record_overlays_action_->setChecked(options_.record_overlays);
    file->addAction("&Screenshot", QKeySequence("F12"), this, [this] { screenshot(false); });
    file->addAction("Screenshot of the &Window", QKeySequence("Shift+F12"), this,
                    [this] { screenshot(true); });
    file->addSeparator();
    file->addAction("Save &Trajectory...", this, &MainWindow::save_trajectory);
    file->addAction("Re&play Trajectory...", this, &MainWindow::replay_trajectory);
    file->addSeparator();
    file->addAction("&Quit", QKeySequence::Quit, this, &QWidget::close);

    QMenu* view = menuBar()->addMenu("&View");
    const auto checkable = [&](const char* text, bool on, const char* key = nullptr) {
        QAction* a = view->addAction(text);
        a->setCheckable(true);
        a->setChecked(on);
        if (key != nullptr) a->setShortcut(QKeySequence(key));
        connect(a, &QAction::toggled, this, &MainWindow::update_scene_options);
        return a;
    };
    overlays_action_ =
        checkable("&Overlays",
                  !options_.hide_overlays && settings_.value("view/overlays", true).toBool(), "F2");
    memory_action_ = checkable("  &Memory Panel", settings_.value("view/memory", true).toBool());
    quality_action_ = checkable("  &Quality Panel", settings_.value("view/quality", true).toBool());
    performance_action_ =
        checkable("  &Performance Panel", settings_.value("view/performance", true).toBool());
    controls_action_ =
        checkable("  &Controls Panel", settings_.value("view/controls", true).toBool());
    reference_action_ =
        checkable("&Ground-Truth Reference Pane", settings_.value("view/reference", true).toBool());
    view->addSeparator();
    pause_action_ = view->addAction("&Pause");
    pause_action_->setCheckable(true);
    pause_action_->setChecked(options_.paused);
    pause_action_->setShortcut(QKeySequence("F5"));
    connect(pause_action_, &QAction::toggled, this, [this](bool on) {
        worker_->set_paused(on);
        viewport_->controls().paused = on;
        statusBar()->showMessage(on ? "paused (F6 steps one block)" : "running", 3000);
    });
    view->addAction("&Step One Block", QKeySequence("F6"), this, [this] { worker_->step(); });
    view->addAction("&Reset", QKeySequence("F7"), this, [this] { worker_->reset(); });

    QMenu* settings = menuBar()->addMenu("&Settings");
    settings->addAction("Mouse &Sensitivity...", this, &MainWindow::set_mouse_sensitivity);
    invert_x_action_ = settings->addAction("Invert Mouse &X");
    invert_x_action_->setCheckable(true);
    invert_x_action_->setChecked(key_map_.mouse.invert_x);
    invert_y_action_ = settings->addAction("Invert Mouse &Y");
    invert_y_action_->setCheckable(true);
    invert_y_action_->setChecked(key_map_.mouse.invert_y);
    for (QAction* a : {invert_x_action_, invert_y_action_}) {
        connect(a, &QAction::toggled, this, [this] {
            key_map_.mouse.invert_x = invert_x_action_->isChecked();
            key_map_.mouse.invert_y = invert_y_action_->isChecked();
            worker_->set_key_map(key_map_);
            save_settings();
        });
    }

    settings->addSeparator();
    settings->addAction("&Default KV Cache for This Model", this, [this] {
        cache_chosen_ = false;
        cache_ = default_cache_settings(*model_);
        worker_->set_cache(cache_);
        sync_controls();
        save_settings();
        statusBar()->showMessage("KV cache: " + q(cache_spec(cache_)), 5000);
    });

    QMenu* help = menuBar()->addMenu("&Help");
    help->addAction("&Controls", QKeySequence("F1"), this, [this] {
        auto* box = new QMessageBox(QMessageBox::NoIcon, "qvg-world controls", kControlsHelp,
                                    QMessageBox::Close, this);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
    });
    help->addAction("&About qvg-world", this, [this] {
        QMessageBox::about(
            this, "About qvg-world",
            "<h3>qvg-world 0.1.0</h3><p>An interactive world model viewer: a causal video "
            "diffusion transformer generates the view block by block from your input, keeping its "
            "history in a quantized KV cache (QVG: k-means smoothing and progressive residual "
            "quantization).</p><p>The right pane renders the procedural world the default model "
            "is trained on, from the same camera path, as ground truth.</p>");
    });
}

void MainWindow::show_error(const QString& title, const QString& text) {
    std::cerr << "qvg-world: " << title.toStdString() << ": " << text.toStdString() << "\n";
    statusBar()->showMessage(text, 10000);
    auto* box = new QMessageBox(QMessageBox::Critical, title, text, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

void MainWindow::open_model() {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open a world model or Self-Forcing checkpoint",
        q(paths_.model.parent_path().string()),
        "Checkpoints (*.pt *.pth *.ckpt *.safetensors);;All files (*)");
    if (path.isEmpty()) return;
    paths_.model = path.toStdString();
    if (paths_.text_embedding.empty() && !is_world_model_file(paths_.model)) {
        statusBar()->showMessage("now choose the prompt's text embedding", 5000);
        open_text_embedding();
        return;
    }
    load_checkpoint(paths_);
}

void MainWindow::open_text_embedding() {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open a text embedding", q(paths_.text_embedding.parent_path().string()),
        "Tensors (*.safetensors *.pt *.pth);;All files (*)");
    if (path.isEmpty()) return;
    paths_.text_embedding = path.toStdString();
    if (!paths_.model.empty()) load_checkpoint(paths_);
}

void MainWindow::open_vae() {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open the Wan2.1 VAE", q(paths_.vae.parent_path().string()),
        "Checkpoints (*.pth *.pt *.safetensors);;All files (*)");
    if (path.isEmpty()) return;
    paths_.vae = path.toStdString();
    if (!paths_.model.empty() && !paths_.text_embedding.empty()) load_checkpoint(paths_);
}

void MainWindow::use_test_model() {
    stop_recording();
    start_model(make_test_model(0, options_.device));
}

void MainWindow::start_model(std::shared_ptr<const LoadedModel> model) {
    model_ = std::move(model);
    model_label_->setText(q(model_->label));
    if (cache_chosen_) {
        worker_->set_model(model_);
    } else {
        cache_ = default_cache_settings(*model_);
        worker_->set_model(model_, cache_);
        sync_controls();
    }
}

void MainWindow::load_checkpoint(const ModelPaths& paths) {
    if (loader_.joinable()) {
        statusBar()->showMessage("a model is already loading", 3000);
        return;
    }
    progress_ =
        new QProgressDialog("Loading " + q(paths.model.filename().string()), QString(), 0, 4, this);
    progress_->setWindowTitle("qvg-world: loading weights");
    progress_->setCancelButton(nullptr);
    progress_->setMinimumDuration(0);
    progress_->setWindowModality(Qt::WindowModal);
    progress_->setValue(0);
    progress_->show();
    loader_ = std::thread([this, paths] {
        std::shared_ptr<const LoadedModel> model;
        std::string error;
        try {
            model = load_model(paths, [this](int step, int steps, const std::string& what) {
                QMetaObject::invokeMethod(this, [this, step, steps, what] {
                    if (progress_ == nullptr) return;
                    progress_->setMaximum(steps);
                    progress_->setValue(step);
                    progress_->setLabelText(q(what));
                });
            });
        } catch (const std::exception& e) {
            error = e.what();
        }
        QMetaObject::invokeMethod(this, [this, model, error] {
            if (loader_.joinable()) loader_.join();
            if (progress_ != nullptr) {
                progress_->close();
                progress_->deleteLater();
                progress_ = nullptr;
            }
            const QString pending = pending_record_;
            pending_record_.clear();
            auto start_pending = [&] {
                if (!pending.isEmpty() && start_recording(pending)) {
                    record_action_->setChecked(true);
                }
            };
            if (!model) {
                show_error("qvg-world: cannot open the model",
                           q(error) + "\n\nThe viewer keeps running the current model.");
                start_pending();
                return;
            }
            stop_recording();  // the frame size changes
            start_model(model);
            save_settings();
            start_pending();
        });
    });
}

void MainWindow::toggle_recording(bool on) {
    if (!on) {
        stop_recording();
        return;
    }
    if (recorder_) return;
    const QString dir = settings_
                            .value("paths/recordings",
                                   QStandardPaths::writableLocation(QStandardPaths::MoviesLocation))
                            .toString();
    const QString suggested =
        dir + "/qvg-world-" + QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss") + ".mp4";
    const QString path =
        QFileDialog::getSaveFileName(this, "Record to MP4", suggested, "MP4 video (*.mp4)");
    if (path.isEmpty() || !start_recording(path)) {
        const QSignalBlocker block(record_action_);
        record_action_->setChecked(false);
        return;
    }
    settings_.setValue("paths/recordings", QFileInfo(path).absolutePath());
}

bool MainWindow::start_recording(const QString& path) {
    render::RecorderOptions ro;
    ro.fps = options_.fps;
    const bool overlays = record_overlays_action_->isChecked();
    if (overlays) {
        const qreal dpr = viewport_->devicePixelRatioF();
        ro.width = static_cast<int>(viewport_->width() * dpr) & ~1;
        ro.height = static_cast<int>(viewport_->height() * dpr) & ~1;
    } else {
        ro.width = model_->frame_width & ~1;
        ro.height = model_->frame_height & ~1;
    }
    try {
        recorder_ = std::make_shared<render::Recorder>(path.toStdString(), ro);
    } catch (const std::exception& e) {
        show_error("qvg-world: cannot record", q(e.what()));
        return false;
    }
    recording_path_ = path;
    recording_started_ = std::chrono::steady_clock::now();
    if (overlays) {
        viewport_->set_overlay_recorder(recorder_, ro.width, ro.height);
    } else {
        worker_->set_recorder(recorder_);
    }
    statusBar()->showMessage("recording to " + path, 5000);
    return true;
}

void MainWindow::stop_recording() {
    if (!recorder_) return;
    worker_->set_recorder(nullptr);
    viewport_->set_overlay_recorder(nullptr, 0, 0);
    viewport_->set_recording_label({});
    recorder_->stop();
    const render::RecorderStats st = recorder_->stats();
    recorder_.reset();
    recording_label_->clear();
    if (record_action_ != nullptr) {
        const QSignalBlocker block(record_action_);
        record_action_->setChecked(false);
    }
    if (!st.error.empty()) {
        show_error("qvg-world: recording failed",
                   q(st.error) + QString("\n\n%1 frames were written to %2 and stay playable.")
                                     .arg(st.frames_written)
                                     .arg(recording_path_));
    } else {
        statusBar()->showMessage(QString("saved %1: %2 frames, %3 dropped")
                                     .arg(recording_path_)
                                     .arg(st.frames_written)
                                     .arg(st.frames_dropped),
                                 8000);
    }
}

void MainWindow::screenshot(bool whole_window) {
    QString dir = q(options_.screenshot_dir);
    if (dir.isEmpty()) {
        dir = settings_
                  .value("paths/screenshots",
                         QStandardPaths::writableLocation(QStandardPaths::PicturesLocation))
                  .toString();
    }
    QDir().mkpath(dir);
    const QString path =
        dir + "/qvg-world-" + QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss-zzz") + ".png";
    // The viewport alone (frames and overlays), or the window with its menus and status bar.
    const QImage image = whole_window ? grab().toImage() : viewport_->grabFramebuffer();
    QImageWriter writer(path, "png");
    if (!writer.write(image)) {
        show_error("qvg-world: screenshot not saved",
                   "Cannot write " + path + ": " + writer.errorString());
        return;
    }
    statusBar()->showMessage("screenshot saved to " + path, 5000);
}

void MainWindow::save_trajectory() {
    const QString path = QFileDialog::getSaveFileName(
        this, "Save the trajectory", settings_.value("paths/trajectories").toString(),
        "Trajectories (*.json)");
    if (path.isEmpty()) return;
    try {
        input::save_trajectory(path.toStdString(), worker_->trajectory());
        settings_.setValue("paths/trajectories", QFileInfo(path).absolutePath());
        statusBar()->showMessage("trajectory saved to " + path, 5000);
    } catch (const std::exception& e) {
        show_error("qvg-world: trajectory not saved", q(e.what()));
    }
}

void MainWindow::replay_trajectory() {
    const QString path = QFileDialog::getOpenFileName(
        this, "Replay a trajectory", settings_.value("paths/trajectories").toString(),
        "Trajectories (*.json);;All files (*)");
    if (path.isEmpty()) return;
    try {
        input::Trajectory t = input::load_trajectory(path.toStdString());
        seed_ = t.seed;
        worker_->set_replay(std::move(t));
        sync_controls();
    } catch (const std::exception& e) {
        show_error("qvg-world: cannot replay", q(e.what()));
    }
}

void MainWindow::apply_controls() {
    render::OverlayControls& c = viewport_->controls();
    const render::OverlayRequest r = c.requests;
    c.requests = render::OverlayRequest::kNone;
    using render::has_request;
    using render::OverlayRequest;
    if (has_request(r, OverlayRequest::kStages)) {
        cache_.stages = c.stages;
        cache_chosen_ = true;
        worker_->set_stages(c.stages);
    }
    if (has_request(r, OverlayRequest::kApplyCache)) {
        CacheSettings next = cache_;
        next.method = c.bits == render::OverlayBits::kBf16 ? core::CodecMethod::kBf16
                                                           : core::CodecMethod::kQvg;
        next.bits = c.bits == render::OverlayBits::kInt4 ? 4 : 2;
        next.group = c.group;
        next.span_frames = c.span_frames;
        next.sink_frames = c.sink_frames;
        next.window_frames = c.window_frames;
        cache_ = next;
        cache_chosen_ = true;
        worker_->set_cache(next);
        c.stages_available = next.method == core::CodecMethod::kQvg;
    }
    if (has_request(r, OverlayRequest::kPause)) pause_action_->setChecked(c.paused);
    if (has_request(r, OverlayRequest::kStep)) worker_->step();
    if (has_request(r, OverlayRequest::kReset)) worker_->reset();
    if (has_request(r, OverlayRequest::kSeed)) {
        seed_ = c.seed;
        worker_->set_seed(seed_);
    }
    save_settings();
}

void MainWindow::sync_controls() {
    viewport_->controls() = overlay_controls(cache_, seed_, pause_action_->isChecked());
}

void MainWindow::poll_worker() {
    const WorkerStatus st = worker_->status();
    if (st.message_serial != last_message_serial_) {
        last_message_serial_ = st.message_serial;
        if (st.message_is_error) {
            std::cerr << "qvg-world: " << st.message << "\n";
            statusBar()->setStyleSheet("color: #ff7070;");
        } else {
            statusBar()->setStyleSheet({});
        }
        statusBar()->showMessage(q(st.message), st.message_is_error ? 15000 : 6000);
    }
    frames_label_->setText(QString("%1 frames, %2 chunks").arg(st.frames_generated).arg(st.chunks));
    if (recorder_) {
        const render::RecorderStats rs = recorder_->stats();
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - recording_started_)
                .count();
        const QString label =
            QString("REC %1  %2 s").arg(QFileInfo(recording_path_).fileName()).arg(secs, 0, 'f', 0);
        recording_label_->setText(label);
        viewport_->set_recording_label(label.toStdString());
        if (!rs.error.empty()) stop_recording();  // full disk, unwritable: says so, keeps file
    }
    if (options_.frames > 0 && st.finished && !finishing_) {
        finishing_ = true;
        close();
    }
}

void MainWindow::closeEvent(QCloseEvent* event) {
    stop_recording();
    if (!options_.save_trajectory.empty()) {
        try {
            input::save_trajectory(options_.save_trajectory, worker_->trajectory());
        } catch (const std::exception& e) {
            std::cerr << "qvg-world: cannot save the trajectory: " << e.what() << "\n";
        }
    }
    save_settings();
    event->accept();
}

void MainWindow::set_mouse_sensitivity() {
    bool ok = false;
    const double v = QInputDialog::getDouble(
        this, "Mouse sensitivity",
        "Degrees of turn per pixel of mouse motion:", key_map_.mouse.sensitivity_deg_per_px, 0.01,
        2.0, 2, &ok);
    if (!ok) return;
    key_map_.mouse.sensitivity_deg_per_px = v;
    worker_->set_key_map(key_map_);
    save_settings();
}

void MainWindow::apply_mouse_settings() {
    key_map_.mouse.sensitivity_deg_per_px =
        settings_.value("mouse/sensitivity_deg_per_px", key_map_.mouse.sensitivity_deg_per_px)
            .toDouble();
    key_map_.mouse.invert_x = settings_.value("mouse/invert_x", key_map_.mouse.invert_x).toBool();
    key_map_.mouse.invert_y = settings_.value("mouse/invert_y", key_map_.mouse.invert_y).toBool();
}

void MainWindow::update_scene_options() {
    SceneOptions o;
    o.overlays = overlays_action_->isChecked();
    o.panels.memory = memory_action_->isChecked();
    o.panels.quality = quality_action_->isChecked();
    o.panels.performance = performance_action_->isChecked();
    o.panels.controls = controls_action_->isChecked();
    o.reference_pane = reference_action_->isChecked();
    viewport_->set_scene_options(o);
    save_settings();
}

void MainWindow::load_settings() {
    restoreGeometry(settings_.value("window/geometry").toByteArray());
    seed_ = settings_.value("stream/seed", 0).toULongLong();
    // A cache is restored only if it was chosen; otherwise each model starts with its own.
    cache_chosen_ = settings_.value("stream/cache_chosen", false).toBool();
    if (cache_chosen_) {
        try {
            cache_ = parse_cache_spec(settings_.value("stream/cache").toString().toStdString());
        } catch (const std::exception&) {
            cache_chosen_ = false;  // a hand-edited settings file must not stop the viewer
        }
    }
    paths_.model = settings_.value("paths/model").toString().toStdString();
    paths_.text_embedding = settings_.value("paths/text_embedding").toString().toStdString();
    paths_.vae = settings_.value("paths/vae").toString().toStdString();
}

void MainWindow::save_settings() {
    settings_.setValue("window/geometry", saveGeometry());
    settings_.setValue("stream/seed", QVariant::fromValue<qulonglong>(seed_));
    settings_.setValue("stream/cache", q(cache_spec(cache_)));
    settings_.setValue("stream/cache_chosen", cache_chosen_);
    settings_.setValue("paths/model", q(paths_.model.string()));
    settings_.setValue("paths/text_embedding", q(paths_.text_embedding.string()));
    settings_.setValue("paths/vae", q(paths_.vae.string()));
    settings_.setValue("mouse/sensitivity_deg_per_px", key_map_.mouse.sensitivity_deg_per_px);
    settings_.setValue("mouse/invert_x", key_map_.mouse.invert_x);
    settings_.setValue("mouse/invert_y", key_map_.mouse.invert_y);
    if (overlays_action_ != nullptr && !options_.hide_overlays) {
        settings_.setValue("view/overlays", overlays_action_->isChecked());
    }
    if (memory_action_ != nullptr) {
        settings_.setValue("view/memory", memory_action_->isChecked());
        settings_.setValue("view/quality", quality_action_->isChecked());
        settings_.setValue("view/performance", performance_action_->isChecked());
        settings_.setValue("view/controls", controls_action_->isChecked());
        settings_.setValue("view/reference", reference_action_->isChecked());
    }
}

}  // namespace qvg::app
