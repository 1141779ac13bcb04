#include "headless.h"

#include "generation_worker.h"
#include "scene_renderer.h"

#include <qvg/input/trajectory.h>
#include <qvg/render/recorder.h>

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QImage>
#include <QImageWriter>
#include <QOffscreenSurface>
#include <QOpenGLContext>
#include <QOpenGLFramebufferObject>
#include <QOpenGLFunctions>
#include <QThread>

#include <iostream>

namespace qvg::app {
namespace {

constexpr int kWidth = 1280;
constexpr int kHeight = 720;
constexpr std::int64_t kDefaultFrames = 12;  // one block of the test model

}  // namespace

int run_headless(const ViewerOptions& options, const input::KeyMap& key_map,
                 std::shared_ptr<const LoadedModel> model) {
    WorkerOptions wo;
    wo.seed = options.seed.value_or(0);
    wo.cache = options.cache.value_or(default_cache_settings(*model));
    wo.fps = 1000;  // nobody watches: do not pace
    wo.key_map = key_map;
    wo.stop_after_frames = options.frames > 0 ? options.frames : kDefaultFrames;
    if (!options.replay.empty()) {
        try {
            wo.replay = input::load_trajectory(options.replay);
            wo.seed = wo.replay->seed;
        } catch (const std::exception& e) {
            std::cerr << "qvg-world: cannot replay: " << e.what() << "\n";
            return 1;
        }
    }
    std::shared_ptr<render::Recorder> recorder;
    if (!options.record.empty()) {
        try {
            render::RecorderOptions ro;
            ro.width = model->frame_width & ~1;
            ro.height = model->frame_height & ~1;
            ro.fps = options.fps;
            ro.ring_slots = 64;
            recorder = std::make_shared<render::Recorder>(options.record, ro);
        } catch (const std::exception& e) {
            std::cerr << "qvg-world: cannot record: " << e.what() << "\n";
            return 1;
        }
    }
    GenerationWorker worker(std::move(model), wo, {});
    if (recorder) worker.set_recorder(recorder);
    std::uint64_t serial = 0;
    for (;;) {
        const WorkerStatus st = worker.status();
        if (st.message_serial != serial) {
            serial = st.message_serial;
            std::cerr << "qvg-world: " << st.message << "\n";
            if (st.message_is_error) return 1;
        }
        if (st.finished) break;
        QThread::msleep(20);
    }
    if (recorder) {
        recorder->stop();
        const render::RecorderStats rs = recorder->stats();
        if (!rs.error.empty()) {
            std::cerr << "qvg-world: recording failed: " << rs.error << "\n";
            return 1;
        }
    }
    if (!options.save_trajectory.empty()) {
        input::save_trajectory(options.save_trajectory, worker.trajectory());
    }

    QOffscreenSurface surface;
    surface.create();
    QOpenGLContext context;
    if (!context.create() || !context.makeCurrent(&surface)) {
        std::cerr << "qvg-world: no OpenGL context for the offscreen screenshot\n";
        return 1;
    }
    int code = 0;
    {
        QOpenGLFramebufferObject fbo(kWidth, kHeight);
        fbo.bind();
        try {
            SceneRenderer scene;
            TripleBuffer<ViewerFrame>& frames = worker.frames();
            frames.acquire();
            const ViewerFrame& frame = frames.front();
            SceneOptions so;
            so.overlays = !options.hide_overlays;
            render::OverlayControls controls = overlay_controls(wo.cache, wo.seed, false);
            scene.upload(frame, so.reference_pane);
            // Auto-sized ImGui windows measure themselves on their first frame and appear on
            // the next, so the picture is taken on the third.
            for (int i = 0; i < 3; ++i) {
                scene.paint(frame, frame.stats, controls, so, kWidth, kHeight, 1.0f, 1.0f / 16);
            }
            context.functions()->glFinish();
            const QImage image = fbo.toImage().convertToFormat(QImage::Format_RGB888);
            QImageWriter writer(QString::fromStdString(options.headless_screenshot), "png");
            if (!writer.write(image)) {
                std::cerr << "qvg-world: cannot write " << options.headless_screenshot << ": "
                          << writer.errorString().toStdString() << "\n";
                code = 2;
            }
        } catch (const std::exception& e) {
            std::cerr << "qvg-world: offscreen rendering failed: " << e.what() << "\n";
            code = 1;
        }
        fbo.release();
    }
    context.doneCurrent();
    return code;
}

}  // namespace qvg::app
