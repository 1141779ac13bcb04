#pragma once
// The viewer's overlay panels (memory, quality, performance, controls), drawn with Dear ImGui in
// the GL viewport. Everything comes in as plain numbers: render/ knows neither the model nor the
// cache, and the app turns what the user did in the controls panel into requests.

#include <cstdint>
#include <string>
#include <vector>

namespace qvg::render {

struct OverlayMemory {
    std::string codec;                           // "QVG INT2 G64 S1", "BF16"
    std::int64_t kv_bytes = 0;                   // every byte the cache holds now
    std::int64_t bf16_bytes = 0;                 // the same frames held as BF16
    std::vector<std::int64_t> layer_bytes;       // per layer
    std::vector<std::int64_t> layer_bf16_bytes;  // per layer
    std::int64_t frames_kept = 0;                // latent frames of history per layer
    std::int64_t sink_frames = 0;
    std::int64_t span_frames = 0;  // frames inside encoded spans
    std::int64_t tail_frames = 0;
    std::int64_t spans = 0;
    std::int64_t window_frames = 0;  // 0: everything is kept
    std::string free_memory_source;  // "device" or "host RAM"
    std::int64_t free_bytes = 0;
    std::int64_t fit_frames_bf16 = 0;   // frames of history that fit in free_bytes as BF16
    std::int64_t fit_frames_codec = 0;  // ... with the current codec
};

// Relative error ||X - X^|| / ||X|| of one role of one layer, newest span.
struct OverlayRoleError {
    std::vector<double> stage_rel_error;  // after each PRQ stage
    double rel_error = 0.0;               // full reconstruction
    bool is_bound = false;                // stages were dropped: the value is a bound
};

struct OverlayQuality {
    bool compresses = false;              // BF16 caches have no error
    std::vector<OverlayRoleError> key;    // per layer
    std::vector<OverlayRoleError> value;  // per layer
    std::vector<float> key_history;       // mean K error over layers, one entry per chunk
    std::vector<float> value_history;
};

struct OverlayPerformance {
    std::string device;
    double generated_fps = 0.0;  // video frames per second of generation work
    double displayed_fps = 0.0;  // frames presented per second
    double dit_ms = 0.0;         // last chunk
    double decode_ms = 0.0;
    double cache_ms = 0.0;
    double latency_ms = -1.0;  // input change -> first frame showing it; < 0: none yet
    std::int64_t frames_generated = 0;
    std::int64_t chunks = 0;
    std::int64_t dropped_display = 0;  // published frames replaced before they were shown
    std::int64_t dropped_record = 0;   // frames the recorder's ring could not take
    std::vector<float> chunk_ms_history;
};

struct OverlayInfo {
    std::string model;      // what runs, e.g. "random-weight test model (no trained world yet)"
    std::string decoder;    // how latents become pixels
    std::string action;     // the action of the newest latent
    std::string recording;  // "" or "REC out.mp4 12 s"
    bool pointer_locked = false;
};

struct OverlayStats {
    OverlayMemory memory;
    OverlayQuality quality;
    OverlayPerformance performance;
    OverlayInfo info;
};

enum class OverlayBits { kInt2, kInt4, kBf16 };

// What the user asked for in the controls panel; combined as flags.
enum class OverlayRequest : std::uint32_t {
    kNone = 0,
    kStages = 1u << 0,      // stages changed: apply live
    kApplyCache = 1u << 1,  // bits / group / span / sink / window changed: rebuild the cache
    kStep = 1u << 2,        // generate one chunk while paused
    kReset = 1u << 3,       // restart the stream from frame 0
    kPause = 1u << 4,       // paused toggled
    kSeed = 1u << 5,        // new seed: restart with it
};
constexpr OverlayRequest operator|(OverlayRequest a, OverlayRequest b) {
    return static_cast<OverlayRequest>(static_cast<std::uint32_t>(a) |
                                       static_cast<std::uint32_t>(b));
}
constexpr bool has_request(OverlayRequest set, OverlayRequest flag) {
    return (static_cast<std::uint32_t>(set) & static_cast<std::uint32_t>(flag)) != 0;
}

// The state shown in the controls panel. The panel edits it in place and reports in `requests`
// what changed this frame; the app applies the requests and clears them.
struct OverlayControls {
    int stages = 1;  // 0..4
    OverlayBits bits = OverlayBits::kInt2;
    int group = 64;  // 16, 32, 64, 128
    int span_frames = 12;
    int sink_frames = 3;
    int window_frames = 96;
    bool paused = false;
    std::uint64_t seed = 0;
    bool stages_available = true;  // false: the cache is not QVG (the slider is disabled)
    OverlayRequest requests = OverlayRequest::kNone;
};

// Which panels are drawn.
struct OverlayVisibility {
    bool memory = true;
    bool quality = true;
    bool performance = true;
    bool controls = true;
};

// Where the panels went, so that the frames can be laid out around them.
struct OverlayLayout {
    float left = 0.0f;   // width taken by the left column (memory, quality) from x = 0
    float right = 0.0f;  // width taken by the right column (performance, controls)
    float top = 0.0f;    // height taken by the info bar from y = 0
};

// Draws the info bar and the panels into the current ImGui frame (between
// OverlayRenderer::begin_frame and end_frame): memory above quality in a left column,
// performance above controls in a right column, of a width x height viewport.
OverlayLayout draw_overlay_panels(const OverlayStats& stats, OverlayControls& controls,
                                  const OverlayVisibility& visible, float width, float height);

// "1.5 KiB", "12.0 MiB"
std::string format_bytes(std::int64_t bytes);

}  // namespace qvg::render
