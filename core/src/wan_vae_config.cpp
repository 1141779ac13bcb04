// WanVaeConfig: presets and the decoder's derived channel plan.

#include <cmath>

#include "qvg/core/error.h"
#include "qvg/core/wan_vae.h"

namespace qvg::core {
namespace {

// Wan2.1 latent statistics (per channel), from the released VAE.
const std::vector<float> kWan21Mean = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                       -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                       -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
const std::vector<float> kWan21Std = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f,
                                      2.6052f, 2.0743f, 3.2687f, 2.1526f, 2.8652f, 1.5579f,
                                      1.6382f, 1.1253f, 2.8251f, 1.9160f};

}  // namespace

WanVaeConfig WanVaeConfig::wan21() {
    WanVaeConfig c;
    c.latent_mean = kWan21Mean;
    c.latent_std = kWan21Std;
    return c;
}

WanVaeConfig WanVaeConfig::tiny() {
    WanVaeConfig c = wan21();
    c.base_dim = 8;
    return c;
}

// Decoder stage i runs from dims[i] to dims[i + 1] with dims = base * [mult[-1], reversed mult];
// each upsampler halves the channels, so every stage after the first starts at dims[i] / 2.
std::vector<int64_t> WanVaeConfig::stage_out_dims() const {
    std::vector<int64_t> out;
    for (auto it = dim_mult.rbegin(); it != dim_mult.rend(); ++it) out.push_back(base_dim * *it);
    return out;
}

std::vector<int64_t> WanVaeConfig::stage_in_dims() const {
    std::vector<int64_t> in;
    if (dim_mult.empty()) return in;
    in.push_back(base_dim * dim_mult.back());
    const auto out = stage_out_dims();
    for (size_t i = 1; i < out.size(); ++i) in.push_back(out[i - 1] / 2);
    return in;
}

int64_t WanVaeConfig::spatial_factor() const {
    return dim_mult.empty() ? 1 : int64_t{1} << (dim_mult.size() - 1);
}

int64_t WanVaeConfig::temporal_factor() const {
    int64_t factor = 1;
    for (bool t : temporal_upsample) factor *= t ? 2 : 1;
    return factor;
}

int64_t WanVaeConfig::output_frames(int64_t latent_frames) const {
    return latent_frames <= 0 ? 0 : 1 + temporal_factor() * (latent_frames - 1);
}

void WanVaeConfig::validate() const {
    QVG_CHECK(base_dim > 0 && z_dim > 0,
              "Wan VAE config: base_dim and z_dim must be positive, "
              "found base_dim {} z_dim {}",
              base_dim, z_dim);
    QVG_CHECK(!dim_mult.empty(), "Wan VAE config: dim_mult is empty");
    for (int64_t m : dim_mult) {
        QVG_CHECK(m > 0, "Wan VAE config: dim_mult entries must be positive, found {}", dim_mult);
    }
    QVG_CHECK(num_res_blocks >= 0, "Wan VAE config: num_res_blocks must be >= 0, found {}",
              num_res_blocks);
    QVG_CHECK(temporal_upsample.size() + 1 == dim_mult.size(),
              "Wan VAE config: expected {} temporal_upsample flags (one per upsampling stage), "
              "found {}",
              dim_mult.size() - 1, temporal_upsample.size());
    const auto out = stage_out_dims();
    for (size_t i = 0; i + 1 < out.size(); ++i) {
        QVG_CHECK(out[i] % 2 == 0,
                  "Wan VAE config: stage {} has {} channels; its upsampler "
                  "halves them, so they must be even",
                  i, out[i]);
    }
    QVG_CHECK(latent_mean.size() == static_cast<size_t>(z_dim) &&
                  latent_std.size() == static_cast<size_t>(z_dim),
              "Wan VAE config: expected {} latent mean/std values, found {} / {}", z_dim,
              latent_mean.size(), latent_std.size());
    for (float s : latent_std) {
        QVG_CHECK(std::isfinite(s) && s != 0.0f,
                  "Wan VAE config: latent std must be finite and non-zero, found {}", latent_std);
    }
}

}  // namespace qvg::core
