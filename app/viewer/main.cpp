// qvg-world: the desktop viewer. Parses the command line, then either opens the main window or,
// with --headless-screenshot, renders offscreen and exits.

#include "cache_settings.h"
#include "default_model.h"
#include "headless.h"
#include "main_window.h"
#include "model_loader.h"
#include "viewer_options.h"

#include <qvg/input/key_map.h>

#include <CLI/CLI.hpp>
#include <QApplication>

#include <QSurfaceFormat>
#include <cstdlib>

#include <iostream>

int main(int argc, char** argv) {
    using namespace qvg::app;
    ViewerOptions o;
    CLI::App cli{"qvg-world: walk through a generated world, with the KV cache on display"};
    cli.allow_extras();  // Qt's own options (-platform, -style, ...)
    cli.add_option("--model", o.model,
                   "world model (.safetensors from qvg train) or Self-Forcing checkpoint (file or "
                   "directory; needs --text-embedding); default: see below");
    cli.add_option("--text-embedding", o.text_embedding, "the prompt's text embedding tensor");
    cli.add_option("--vae", o.vae, "Wan2.1 VAE checkpoint (default: latent preview)");
    cli.add_option("--device", o.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    std::string cache;
    cli.add_option("--cache", cache,
                   "KV cache: CODEC[,bits=2,group=32,stages=1,span=24,sink=3,window=144,"
                   "centroids=32,iterations=2,codebook=16,asym=0,clip=0,kch=0] with CODEC qvg, "
                   "bf16, fp8, rtn, kivi or quarot (codebook: bits per codebook value, 16, 8 or "
                   "4, qvg; clip: a range search per group; kch: keys per channel). Default: "
                   "the model's own, for world models qvg,group=64,centroids=30,iterations=8,"
                   "codebook=4,asym=1,clip=1 (the least loss at KIVI INT2's bytes)");
    std::uint64_t seed = 0;
    auto* seed_opt = cli.add_option("--seed", seed, "noise and world seed");
    cli.add_option("--record", o.record, "record the generated frames to this MP4");
    cli.add_flag("--record-overlays", o.record_overlays, "burn the overlays into the recording");
    cli.add_option("--replay", o.replay, "replay a trajectory JSON (its seed and actions)");
    cli.add_option("--save-trajectory", o.save_trajectory, "write the trajectory here on exit");
    cli.add_option("--frames", o.frames, "exit after N generated video frames")
        ->check(CLI::NonNegativeNumber);
    cli.add_option("--headless-screenshot", o.headless_screenshot,
                   "render offscreen with the overlays, save this PNG and exit");
    cli.add_option("--screenshot-dir", o.screenshot_dir, "where F12 screenshots go");
    cli.add_option("--keymap", o.keymap, "key map JSON (default: WASD, arrows/IJKL, mouse)");
    cli.add_option("--fps", o.fps, "frames shown per second at most")
        ->check(CLI::Range(1, 240))
        ->capture_default_str();
    cli.add_flag("--hide-overlays", o.hide_overlays, "start with the overlays hidden");
    cli.add_flag("--paused", o.paused, "start paused");
    cli.footer(
        "Default model (no --model): the first file that exists of\n"
        "  $QVG_WORLD_MODEL\n"
        "  <program dir>/../share/qvg/world/world_model.safetensors\n"
        "  <source dir>/assets/world/world_model.safetensors\n"
        "else a random-weight test DiT (no trained world). A world model is primed with the\n"
        "ground truth of the world it was trained on (metadata qvg.world_seed / qvg.map_size,\n"
        "default seed 1, 1024 m) at the spawn point; --seed then seeds its noise.");
    try {
        cli.parse(argc, argv);
        if (!cache.empty()) o.cache = parse_cache_spec(cache);
        if (seed_opt->count() > 0) o.seed = seed;
    } catch (const CLI::ParseError& e) {
        return cli.exit(e);
    } catch (const std::exception& e) {
        std::cerr << "qvg-world: " << e.what() << "\n";
        return 2;
    }

    if (o.model.empty()) {
        if (const auto found = default_model_path()) o.model = found->string();
    }

    qvg::input::KeyMap key_map = qvg::input::default_key_map();
    if (!o.keymap.empty()) {
        try {
            key_map = qvg::input::load_key_map(o.keymap);
        } catch (const std::exception& e) {
            std::cerr << "qvg-world: " << e.what() << "\n";
            return 2;
        }
    }

    // Without a display Qt would abort with a plugin message that does not say what to do.
    const auto env_set = [](const char* name) {
        const char* v = std::getenv(name);
        return v != nullptr && v[0] != '\0';
    };
    if (!env_set("DISPLAY") && !env_set("WAYLAND_DISPLAY") && !env_set("QT_QPA_PLATFORM")) {
        std::cerr
            << "qvg-world: no display found (DISPLAY and WAYLAND_DISPLAY are unset).\n"
               "  On a desktop, start it from a graphical session; on a server, run it under\n"
               "  xvfb-run, or set QT_QPA_PLATFORM=offscreen for --headless-screenshot.\n";
        return 2;
    }

    QApplication::setOrganizationName("qvg");
    QApplication::setApplicationName("qvg-world");
    QApplication::setApplicationVersion("0.1.0");
    QApplication app(argc, argv);

    if (!o.headless_screenshot.empty()) {
        try {
            std::shared_ptr<const LoadedModel> model =
                o.model.empty() ? make_test_model(0, o.device)
                                : load_model({o.model, o.text_embedding, o.vae, o.device});
            return run_headless(o, key_map, std::move(model));
        } catch (const std::exception& e) {
            std::cerr << "qvg-world: cannot open the model: " << e.what() << "\n";
            return 1;
        }
    }

    MainWindow window(o, key_map);
    window.resize(1280, 800);
    window.show();
    return app.exec();
}
