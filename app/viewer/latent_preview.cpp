#include "latent_preview.h"

#include <qvg/core/wan_vae.h>

#include <ATen/ATen.h>

#include <stdexcept>

namespace qvg::app {

at::Tensor preview_latents(const at::Tensor& latents, std::int64_t scale) {
    if (latents.dim() != 5 || latents.size(2) < 3) {
        throw std::invalid_argument("preview_latents: expected [B, F, C>=3, H, W] latents");
    }
    const at::Tensor z = latents[0].to(at::kCPU, at::kFloat);  // [F, C, H, W]
    const std::int64_t c = z.size(1);
    const std::int64_t third = c / 3;
    const at::Tensor rgb =
        at::stack({z.slice(1, 0, third).mean(1), z.slice(1, third, 2 * third).mean(1),
                   z.slice(1, 2 * third, c).mean(1)},
                  1);  // [F, 3, H, W]
    // Means of ~5 unit-variance channels have a standard deviation near 0.45; 1.6x spreads them
    // over most of the colour range before tanh bounds them.
    const at::Tensor squashed = at::tanh(rgb * 1.6);
    const at::Tensor up = at::upsample_bilinear2d(squashed, {z.size(2) * scale, z.size(3) * scale},
                                                  /*align_corners=*/false);
    return core::to_rgb8(up).contiguous();  // [F, H, W, 3]
}

}  // namespace qvg::app
