// The four overlay panels. Each is a small auto-sized ImGui window pinned to a corner of the
// viewport (the user may collapse it); numbers come in through OverlayStats, edits go out through
// OverlayControls::requests.

#include <qvg/render/overlay.h>

#include <imgui.h>

#include <algorithm>
#include <array>
#include <cfloat>
#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace qvg::render {

std::string format_bytes(std::int64_t bytes) {
    static constexpr std::array<const char*, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (std::abs(v) >= 1024.0 && unit + 1 < kUnits.size()) {
        v /= 1024.0;
        ++unit;
    }
    char buf[32];
    if (unit == 0) {
        std::snprintf(buf, sizeof buf, "%" PRId64 " B", bytes);
    } else {
        std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
    }
    return buf;
}

namespace {

constexpr float kMargin = 10.0f;
constexpr ImGuiWindowFlags kPanelFlags =
    ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoSavedSettings |
    ImGuiWindowFlags_NoFocusOnAppearing | ImGuiWindowFlags_NoMove;
const ImVec4 kDim(0.62f, 0.67f, 0.75f, 1.0f);
const ImVec4 kAccent(0.45f, 0.80f, 1.0f, 1.0f);
const ImVec4 kWarn(1.0f, 0.72f, 0.30f, 1.0f);

std::string format_count(std::int64_t n) {
    char buf[32];
    if (n >= 10'000'000) {
        std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
    } else if (n >= 10'000) {
        std::snprintf(buf, sizeof buf, "%.1fk", static_cast<double>(n) / 1e3);
    } else {
        std::snprintf(buf, sizeof buf, "%" PRId64, n);
    }
    return buf;
}

constexpr float kLeftWidth = 330.0f;
constexpr float kRightWidth = 330.0f;

// Pins the next panel with its top-left (pivot 0) or top-right (pivot 1) corner at x, y.
void place(float x, float y, float pivot_x, float width) {
    ImGui::SetNextWindowPos(ImVec2(x, y), ImGuiCond_Always, ImVec2(pivot_x, 0.0f));
    ImGui::SetNextWindowSizeConstraints(ImVec2(width, 0.0f), ImVec2(width, FLT_MAX));
    ImGui::SetNextWindowBgAlpha(0.86f);
}

// Bottom edge of the window just ended, or y when it was not drawn.
float bottom_of_last(float y) {
    return std::max(y, ImGui::GetWindowPos().y + ImGui::GetWindowSize().y);
}

float avail_width() { return ImGui::GetContentRegionAvail().x; }

// One pinned panel: returns its bottom edge, so the next one in the column goes below it.
template <typename Body>
float panel(const char* title, float x, float y, float pivot_x, float width, Body&& body) {
    place(x, y, pivot_x, width);
    if (ImGui::Begin(title, nullptr, kPanelFlags)) body();
    const float bottom = bottom_of_last(y);
    ImGui::End();
    return bottom;
}

// A bar of `fraction` with text drawn over it.
void bar(float fraction, const char* text) {
    ImGui::ProgressBar(std::clamp(fraction, 0.0f, 1.0f), ImVec2(avail_width(), 0.0f), text);
}

void memory_body(const OverlayMemory& m) {
    ImGui::TextColored(kAccent, "%s", m.codec.c_str());
    const double ratio =
        m.kv_bytes > 0 ? static_cast<double>(m.bf16_bytes) / static_cast<double>(m.kv_bytes) : 1.0;
    ImGui::Text("KV now        %s", format_bytes(m.kv_bytes).c_str());
    ImGui::Text("BF16 equiv.   %s", format_bytes(m.bf16_bytes).c_str());
    ImGui::Text("ratio         ");
    ImGui::SameLine(0.0f, 0.0f);
    ImGui::TextColored(kAccent, "%.2fx", ratio);
    ImGui::Separator();
    ImGui::TextColored(kDim, "per layer: held / BF16 equivalent");
    std::int64_t widest = 1;
    for (std::int64_t b : m.layer_bf16_bytes) widest = std::max(widest, b);
    for (std::size_t i = 0; i < m.layer_bytes.size(); ++i) {
        const std::int64_t bf16 = i < m.layer_bf16_bytes.size() ? m.layer_bf16_bytes[i] : 0;
        char label[96];
        std::snprintf(label, sizeof label, "L%zu  %s / %s", i,
                      format_bytes(m.layer_bytes[i]).c_str(), format_bytes(bf16).c_str());
        bar(static_cast<float>(m.layer_bytes[i]) / static_cast<float>(widest), label);
    }
    ImGui::Separator();
    ImGui::Text("history  %" PRId64 " latent frames", m.frames_kept);
    ImGui::TextColored(kDim, "sink %" PRId64 " | %" PRId64 " in %" PRId64 " spans | tail %" PRId64,
                       m.sink_frames, m.span_frames, m.spans, m.tail_frames);
    if (m.window_frames > 0) {
        ImGui::TextColored(kDim, "window: %" PRId64 " frames after the sink", m.window_frames);
    } else {
        ImGui::TextColored(kDim, "window: everything is kept");
    }
    ImGui::Separator();
    ImGui::Text("free %s: %s", m.free_memory_source.c_str(), format_bytes(m.free_bytes).c_str());
    ImGui::Text("fits  BF16 %s frames", format_count(m.fit_frames_bf16).c_str());
    ImGui::Text("      codec ");
    ImGui::SameLine(0.0f, 0.0f);
    ImGui::TextColored(kAccent, "%s frames", format_count(m.fit_frames_codec).c_str());
}

void role_row(const char* role, std::size_t layer, const OverlayRoleError& e, int max_stages) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::Text("L%zu %s", layer, role);
    for (int s = 0; s < max_stages; ++s) {
        ImGui::TableNextColumn();
        if (static_cast<std::size_t>(s) < e.stage_rel_error.size()) {
            ImGui::Text("%.3f", e.stage_rel_error[static_cast<std::size_t>(s)]);
        } else {
            ImGui::TextColored(kDim, "-");
        }
    }
    ImGui::TableNextColumn();
    if (e.is_bound) {
        ImGui::TextColored(kWarn, "<=%.3f", e.rel_error);
    } else {
        ImGui::Text("%.3f", e.rel_error);
    }
}

void quality_body(const OverlayQuality& q) {
    if (!q.compresses) {
        ImGui::TextColored(kDim, "BF16 cache: stored exactly, no error");
        return;
    }
    int max_stages = 0;
    for (const auto& e : q.key) max_stages = std::max<int>(max_stages, e.stage_rel_error.size());
    for (const auto& e : q.value) max_stages = std::max<int>(max_stages, e.stage_rel_error.size());
    if (q.key.empty()) {
        ImGui::TextColored(kDim, "no span encoded yet");
    } else if (ImGui::BeginTable("err", max_stages + 2,
                                 ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_RowBg)) {
        ImGui::TableSetupColumn("newest span");
        for (int s = 0; s < max_stages; ++s) {
            char name[32];
            std::snprintf(name, sizeof name, "stage %d", s + 1);
            ImGui::TableSetupColumn(name);
        }
        ImGui::TableSetupColumn("final");
        ImGui::TableHeadersRow();
        for (std::size_t i = 0; i < q.key.size(); ++i) {
            role_row("K", i, q.key[i], max_stages);
            if (i < q.value.size()) role_row("V", i, q.value[i], max_stages);
        }
        ImGui::EndTable();
    }
    char label[64];
    const float k_now = q.key_history.empty() ? 0.0f : q.key_history.back();
    const float v_now = q.value_history.empty() ? 0.0f : q.value_history.back();
    std::snprintf(label, sizeof label, "K mean %.3f", k_now);
    ImGui::PlotLines("##kerr", q.key_history.data(), static_cast<int>(q.key_history.size()), 0,
                     label, 0.0f, FLT_MAX, ImVec2(avail_width(), 44.0f));
    std::snprintf(label, sizeof label, "V mean %.3f", v_now);
    ImGui::PlotLines("##verr", q.value_history.data(), static_cast<int>(q.value_history.size()), 0,
                     label, 0.0f, FLT_MAX, ImVec2(avail_width(), 44.0f));
    ImGui::TextColored(kDim, "over time: one point per chunk");
}

void performance_body(const OverlayPerformance& p) {
    ImGui::TextColored(kDim, "%s", p.device.c_str());
    ImGui::Text("generated  ");
    ImGui::SameLine(0.0f, 0.0f);
    ImGui::TextColored(kAccent, "%.1f fps", p.generated_fps);
    ImGui::SameLine();
    ImGui::Text("shown %.1f fps", p.displayed_fps);
    const double total = p.dit_ms + p.decode_ms + p.cache_ms;
    ImGui::Text("chunk %.1f ms", total);
    // Stacked bar: DiT | decode | cache encode.
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    const float width = avail_width();
    const float height = 12.0f;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(origin, ImVec2(origin.x + width, origin.y + height),
                      IM_COL32(45, 50, 60, 255));
    if (total > 0.0) {
        const std::array<double, 3> parts = {p.dit_ms, p.decode_ms, p.cache_ms};
        const std::array<ImU32, 3> colours = {
            IM_COL32(80, 160, 240, 255), IM_COL32(240, 170, 70, 255), IM_COL32(120, 210, 120, 255)};
        float at = origin.x;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            const float w = static_cast<float>(parts[i] / total) * width;
            dl->AddRectFilled(ImVec2(at, origin.y), ImVec2(at + w, origin.y + height), colours[i]);
            at += w;
        }
    }
    ImGui::Dummy(ImVec2(width, height));
    ImGui::TextColored(ImVec4(0.31f, 0.63f, 0.94f, 1.0f), "DiT %.1f", p.dit_ms);
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(0.94f, 0.67f, 0.27f, 1.0f), "decode %.1f", p.decode_ms);
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(0.47f, 0.82f, 0.47f, 1.0f), "cache %.1f ms", p.cache_ms);
    if (p.latency_ms >= 0.0) {
        ImGui::Text("input to photon  %.0f ms", p.latency_ms);
    } else {
        ImGui::Text("input to photon  -");
    }
    ImGui::Text("frames %" PRId64 "  chunks %" PRId64, p.frames_generated, p.chunks);
    if (p.dropped_display > 0 || p.dropped_record > 0) {
        ImGui::TextColored(kWarn, "dropped: %" PRId64 " display, %" PRId64 " recording",
                           p.dropped_display, p.dropped_record);
    } else {
        ImGui::Text("dropped: 0 display, 0 recording");
    }
    ImGui::PlotLines("##chunkms", p.chunk_ms_history.data(),
                     static_cast<int>(p.chunk_ms_history.size()), 0, "ms per chunk", 0.0f, FLT_MAX,
                     ImVec2(width, 44.0f));
}

void controls_body(OverlayControls& c) {
    ImGui::PushItemWidth(170.0f);
    ImGui::BeginDisabled(!c.stages_available);
    // Sliders apply when released, so that dragging does not rebuild anything at every tick.
    ImGui::SliderInt("PRQ stages", &c.stages, 0, 4);
    if (ImGui::IsItemDeactivatedAfterEdit()) c.requests = c.requests | OverlayRequest::kStages;
    ImGui::EndDisabled();
    ImGui::TextColored(kDim, "live: new spans use it, old spans drop stages");
    ImGui::Separator();
    bool cache_edit = false;
    int bits = static_cast<int>(c.bits);
    ImGui::Text("bits");
    ImGui::SameLine();
    cache_edit |= ImGui::RadioButton("INT2", &bits, static_cast<int>(OverlayBits::kInt2));
    ImGui::SameLine();
    cache_edit |= ImGui::RadioButton("INT4", &bits, static_cast<int>(OverlayBits::kInt4));
    ImGui::SameLine();
    cache_edit |= ImGui::RadioButton("BF16", &bits, static_cast<int>(OverlayBits::kBf16));
    c.bits = static_cast<OverlayBits>(bits);
    static constexpr std::array<int, 4> kGroups = {16, 32, 64, 128};
    int group_index = 2;
    for (std::size_t i = 0; i < kGroups.size(); ++i) {
        if (kGroups[i] == c.group) group_index = static_cast<int>(i);
    }
    if (ImGui::Combo("group size", &group_index, "16\00032\00064\000128\000")) {
        c.group = kGroups[static_cast<std::size_t>(group_index)];
        cache_edit = true;
    }
    ImGui::SliderInt("span frames", &c.span_frames, 3, 48);
    cache_edit |= ImGui::IsItemDeactivatedAfterEdit();
    ImGui::SliderInt("sink frames", &c.sink_frames, 0, 12);
    cache_edit |= ImGui::IsItemDeactivatedAfterEdit();
    ImGui::SliderInt("window frames", &c.window_frames, 0, 480);
    cache_edit |= ImGui::IsItemDeactivatedAfterEdit();
    if (cache_edit) c.requests = c.requests | OverlayRequest::kApplyCache;
    ImGui::TextColored(kDim, "bits/group/span/sink/window restart the stream");
    ImGui::Separator();
    if (ImGui::Button(c.paused ? "Resume" : "Pause", ImVec2(70.0f, 0.0f))) {
        c.paused = !c.paused;
        c.requests = c.requests | OverlayRequest::kPause;
    }
    ImGui::SameLine();
    ImGui::BeginDisabled(!c.paused);
    if (ImGui::Button("Step", ImVec2(60.0f, 0.0f))) c.requests = c.requests | OverlayRequest::kStep;
    ImGui::EndDisabled();
    ImGui::SameLine();
    if (ImGui::Button("Reset", ImVec2(60.0f, 0.0f))) {
        c.requests = c.requests | OverlayRequest::kReset;
    }
    int seed = static_cast<int>(c.seed & 0x7fffffff);
    if (ImGui::InputInt("seed", &seed, 1, 100, ImGuiInputTextFlags_EnterReturnsTrue)) {
        c.seed = static_cast<std::uint64_t>(std::max(seed, 0));
        c.requests = c.requests | OverlayRequest::kSeed;
    }
    ImGui::PopItemWidth();
}

float info_bar(const OverlayInfo& info, float width) {
    const float y = kMargin;
    ImGui::SetNextWindowPos(ImVec2(width * 0.5f, y), ImGuiCond_Always, ImVec2(0.5f, 0.0f));
    ImGui::SetNextWindowBgAlpha(0.75f);
    const ImGuiWindowFlags flags =
        kPanelFlags | ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoInputs;
    if (ImGui::Begin("##info", nullptr, flags)) {
        ImGui::Text("action: %s", info.action.c_str());
        ImGui::SameLine(0.0f, 18.0f);
        if (info.pointer_locked) {
            ImGui::TextColored(kAccent, "mouse look on (Esc releases)");
        } else {
            ImGui::TextColored(kDim, "click the view for mouse look");
        }
        if (!info.recording.empty()) {
            ImGui::SameLine(0.0f, 18.0f);
            ImGui::TextColored(ImVec4(1.0f, 0.35f, 0.35f, 1.0f), "%s", info.recording.c_str());
        }
    }
    const float bottom = bottom_of_last(y);
    ImGui::End();
    return bottom;
}

}  // namespace

OverlayLayout draw_overlay_panels(const OverlayStats& stats, OverlayControls& controls,
                                  const OverlayVisibility& visible, float width, float height) {
    (void)height;  // the columns grow downwards; a short viewport lets ImGui clip them
    OverlayLayout layout;
    layout.top = info_bar(stats.info, width) + kMargin;
    float left_y = kMargin;
    float right_y = kMargin;
    const float right_x = width - kMargin;
    if (visible.memory) {
        left_y = panel("Memory  (KV cache)", kMargin, left_y, 0.0f, kLeftWidth,
                       [&] { memory_body(stats.memory); }) +
                 kMargin;
    }
    if (visible.quality) {
        left_y = panel("Quality  (relative error)", kMargin, left_y, 0.0f, kLeftWidth,
                       [&] { quality_body(stats.quality); }) +
                 kMargin;
    }
    if (visible.performance) {
        right_y = panel("Performance", right_x, right_y, 1.0f, kRightWidth,
                        [&] { performance_body(stats.performance); }) +
                  kMargin;
    }
    if (visible.controls) {
        right_y = panel("Controls", right_x, right_y, 1.0f, kRightWidth,
                        [&] { controls_body(controls); }) +
                  kMargin;
    }
    if (visible.memory || visible.quality) layout.left = kLeftWidth + kMargin;
    if (visible.performance || visible.controls) layout.right = kRightWidth + kMargin;
    return layout;
}

}  // namespace qvg::render
