#pragma once
// qvg-world's command line.

#include "cache_settings.h"

#include <cstdint>
#include <optional>
#include <string>

namespace qvg::app {

struct ViewerOptions {
    std::string model;           // world model or Self-Forcing checkpoint; empty: test model
    std::string text_embedding;  // its text embedding
    std::string vae;             // Wan2.1 VAE; empty: fixed latent-to-RGB projection
    std::string device = "cpu";
    std::optional<CacheSettings> cache;  // empty: from the settings
    std::optional<std::uint64_t> seed;   // empty: from the settings
    std::string record;                  // start recording to this MP4 at once
    bool record_overlays = false;        // burn the overlays into the recording
    std::string replay;                  // trajectory JSON to replay
    std::string save_trajectory;         // write the session's trajectory here on exit
    std::int64_t frames = 0;             // exit after this many generated video frames
    std::string headless_screenshot;     // render offscreen with overlays, save, exit
    std::string screenshot_dir;          // where F12 screenshots go (default: settings)
    std::string keymap;                  // key map JSON; empty: the built-in default
    int fps = 16;
    bool hide_overlays = false;
    bool paused = false;
};

}  // namespace qvg::app
