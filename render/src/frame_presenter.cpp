// Frames go up as plain GL 1.1 textures (every libGL exports those, so no loader is needed here)
// and are drawn as ImGui background images, which keeps one draw path for frames and panels.

#include <qvg/render/frame_presenter.h>

#include <GL/gl.h>
#include <imgui.h>

#include <algorithm>
#include <cstdint>

namespace qvg::render {

PaneRect fit_aspect(const PaneRect& area, int frame_width, int frame_height) {
    if (frame_width <= 0 || frame_height <= 0 || area.width <= 0 || area.height <= 0) {
        return {area.x, area.y, 0.0f, 0.0f};
    }
    const float aspect = static_cast<float>(frame_width) / static_cast<float>(frame_height);
    float w = area.width;
    float h = w / aspect;
    if (h > area.height) {
        h = area.height;
        w = h * aspect;
    }
    return {area.x + (area.width - w) * 0.5f, area.y + (area.height - h) * 0.5f, w, h};
}

FramePresenter::~FramePresenter() {
    for (Pane& p : panes_) {
        if (p.texture != 0) glDeleteTextures(1, &p.texture);
    }
}

void FramePresenter::upload(std::size_t index, const FrameView& frame) {
    if (panes_.size() <= index) panes_.resize(index + 1);
    Pane& pane = panes_[index];
    if (frame.data == nullptr || frame.width <= 0 || frame.height <= 0) {
        pane.width = pane.height = 0;
        return;
    }
    if (pane.texture == 0) {
        glGenTextures(1, &pane.texture);
        glBindTexture(GL_TEXTURE_2D, pane.texture);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    }
    glBindTexture(GL_TEXTURE_2D, pane.texture);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glPixelStorei(GL_UNPACK_ROW_LENGTH, frame.stride_bytes / 3);
    if (pane.width != frame.width || pane.height != frame.height) {
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB8, frame.width, frame.height, 0, GL_RGB,
                     GL_UNSIGNED_BYTE, frame.data);
        pane.width = frame.width;
        pane.height = frame.height;
    } else {
        glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, frame.width, frame.height, GL_RGB, GL_UNSIGNED_BYTE,
                        frame.data);
    }
    glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    glBindTexture(GL_TEXTURE_2D, 0);
}

std::vector<PaneRect> FramePresenter::draw(const PaneRect& area,
                                           const std::vector<Caption>& captions) {
    std::vector<std::size_t> shown;
    for (std::size_t i = 0; i < panes_.size(); ++i) {
        if (panes_[i].width > 0) shown.push_back(i);
    }
    std::vector<PaneRect> placed;
    if (shown.empty()) return placed;
    const float gap = 14.0f;
    const float caption_h = ImGui::GetTextLineHeightWithSpacing() + 4.0f;
    const float n = static_cast<float>(shown.size());
    // Side by side or stacked, whichever shows the frames larger.
    const auto cell_for = [&](bool stacked, std::size_t slot) {
        const float s = static_cast<float>(slot);
        if (stacked) {
            const float h = (area.height - gap * (n - 1.0f)) / n;
            return PaneRect{area.x, area.y + s * (h + gap) + caption_h, area.width,
                            h - 2.0f * caption_h};
        }
        const float w = (area.width - gap * (n - 1.0f)) / n;
        return PaneRect{area.x + s * (w + gap), area.y + caption_h, w,
                        area.height - 2.0f * caption_h};
    };
    const Pane& first = panes_[shown.front()];
    const bool stacked = fit_aspect(cell_for(true, 0), first.width, first.height).width >
                         fit_aspect(cell_for(false, 0), first.width, first.height).width;
    ImDrawList* dl = ImGui::GetBackgroundDrawList();
    for (std::size_t slot = 0; slot < shown.size(); ++slot) {
        const std::size_t i = shown[slot];
        const Pane& p = panes_[i];
        const PaneRect r = fit_aspect(cell_for(stacked, slot), p.width, p.height);
        const ImVec2 p0(r.x, r.y);
        const ImVec2 p1(r.x + r.width, r.y + r.height);
        dl->AddRectFilled(ImVec2(p0.x - 2, p0.y - 2), ImVec2(p1.x + 2, p1.y + 2),
                          IM_COL32(48, 58, 72, 255), 3.0f);
        dl->AddImage(reinterpret_cast<ImTextureID>(static_cast<std::uintptr_t>(p.texture)), p0, p1);
        if (i < captions.size()) {
            const Caption& c = captions[i];
            dl->PushClipRect(ImVec2(p0.x, p0.y - caption_h), ImVec2(p1.x, p1.y + caption_h));
            dl->AddText(ImVec2(p0.x, p0.y - caption_h + 1.0f), IM_COL32(235, 240, 248, 255),
                        c.title.c_str());
            dl->AddText(ImVec2(p0.x, p1.y + 4.0f), IM_COL32(160, 172, 190, 255),
                        c.subtitle.c_str());
            dl->PopClipRect();
        }
        placed.push_back(r);
    }
    return placed;
}

}  // namespace qvg::render
