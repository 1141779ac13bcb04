// WanVaeDecoder and WanVaeStream: input checks, latent un-normalisation, the per-latent-frame loop
// over the feature cache, and output layout.

#include "qvg/core/wan_vae.h"

#include <cassert>
#include <utility>

#include <ATen/ATen.h>

#include "qvg/core/error.h"
#include "wan_vae_internal.h"

namespace qvg::core {
namespace {

void check_latents(const at::Tensor& latents, const WanVaeConfig& config) {
    QVG_CHECK(latents.defined(), "Wan VAE decode: latents are an undefined tensor");
    QVG_CHECK(latents.dim() == 5,
              "Wan VAE decode: expected latents [B, F, {}, H, W] (rank 5), found rank {} {}",
              config.z_dim, latents.dim(), latents.sizes().vec());
    QVG_CHECK(latents.size(2) == config.z_dim,
              "Wan VAE decode: expected latents [B, F, {}, H, W], found {} ({} channels)",
              config.z_dim, latents.sizes().vec(), latents.size(2));
    QVG_CHECK(
        latents.size(0) > 0 && latents.size(1) > 0 && latents.size(3) > 0 && latents.size(4) > 0,
        "Wan VAE decode: expected non-empty latents [B, F, {}, H, W], found {}", config.z_dim,
        latents.sizes().vec());
    QVG_CHECK(at::isFloatingType(latents.scalar_type()),
              "Wan VAE decode: expected floating-point latents, found {}",
              c10::toString(latents.scalar_type()));
}

}  // namespace

WanVaeDecoder::WanVaeDecoder(WanVaeConfig config, at::Device device, at::ScalarType dtype,
                             std::shared_ptr<const WanVaeWeights> weights)
    : config_(std::move(config)), device_(device), dtype_(dtype), weights_(std::move(weights)) {}

WanVaeDecoder WanVaeDecoder::load(const TensorMap& weights, const WanVaeConfig& config,
                                  at::Device device, at::ScalarType dtype) {
    config.validate();
    QVG_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf,
              "Wan VAE decoder: expected dtype Float, BFloat16 or Half, found {}",
              c10::toString(dtype));
    auto loaded = std::make_shared<const WanVaeWeights>(
        wan_vae_detail::load_weights(weights, config, device, dtype));
    return WanVaeDecoder(config, device, dtype, std::move(loaded));
}

at::Tensor WanVaeDecoder::decode(const at::Tensor& latents, VaeOutput output) const {
    WanVaeStream stream = start_stream();
    return stream.decode_chunk(latents, output);
}

WanVaeStream WanVaeDecoder::start_stream() const { return WanVaeStream(*this); }

WanVaeStream::WanVaeStream(WanVaeDecoder decoder) : decoder_(std::move(decoder)) { reset(); }

void WanVaeStream::reset() {
    cache_.assign(wan_vae_detail::cache_slot_count(decoder_.config()), at::Tensor());
    latent_frames_ = 0;
    latent_shape_.clear();
}

at::Tensor WanVaeStream::decode_chunk(const at::Tensor& latents, VaeOutput output) {
    const WanVaeConfig& config = decoder_.config();
    check_latents(latents, config);
    const std::vector<int64_t> shape = {latents.size(0), latents.size(2), latents.size(3),
                                        latents.size(4)};
    QVG_CHECK(latent_shape_.empty() || latent_shape_ == shape,
              "Wan VAE stream: expected latents [{}, F, {}, {}, {}] like the stream's earlier "
              "chunks, found {}; call reset() to start a different video",
              latent_shape_.empty() ? 0 : latent_shape_[0], config.z_dim,
              latent_shape_.empty() ? 0 : latent_shape_[2],
              latent_shape_.empty() ? 0 : latent_shape_[3], latents.sizes().vec());

    const int64_t batch = latents.size(0);
    const int64_t frames_in = latents.size(1);
    const int64_t s = config.spatial_factor();
    const int64_t factor = config.temporal_factor();
    const int64_t frames_out =
        latent_frames_ == 0 ? config.output_frames(frames_in) : factor * frames_in;

    // Pipeline layout [B, F, C, H, W] -> the decoder's [B, C, F, H, W], then z * std + mean the
    // way upstream computes it: z / (1 / std) + mean.
    const auto& w = decoder_.weights();
    at::Tensor z = latents.to(decoder_.device(), decoder_.dtype()).permute({0, 2, 1, 3, 4});
    z = z / w.latent_inv_std.view({1, -1, 1, 1, 1}) + w.latent_mean.view({1, -1, 1, 1, 1});

    // Work on a copy of the slot handles so a failure part way leaves the stream untouched.
    std::vector<at::Tensor> cache = cache_;
    at::Tensor video = at::empty({batch, frames_out, 3, latents.size(3) * s, latents.size(4) * s},
                                 z.options());  // [B, T, 3, sH, sW]
    int64_t t0 = 0;
    for (int64_t f = 0; f < frames_in; ++f) {
        at::Tensor frames = wan_vae_detail::decode_latent_frame(w, z.slice(2, f, f + 1), cache);
        const int64_t t = frames.size(2);  // frames: [B, 3, t, sH, sW]
        video.narrow(1, t0, t).copy_(frames.permute({0, 2, 1, 3, 4}));
        t0 += t;
    }
    assert(t0 == frames_out);
    if (output == VaeOutput::kClamped) video.clamp_(-1.0, 1.0);

    cache_ = std::move(cache);
    latent_frames_ += frames_in;
    latent_shape_ = shape;
    return video;
}

std::vector<std::vector<int64_t>> WanVaeStream::cache_shapes() const {
    std::vector<std::vector<int64_t>> shapes;
    for (const at::Tensor& slot : cache_) {
        shapes.push_back(slot.defined() ? slot.sizes().vec() : std::vector<int64_t>{});
    }
    return shapes;
}

int64_t WanVaeStream::cache_bytes() const {
    int64_t bytes = 0;
    for (const at::Tensor& slot : cache_) {
        if (slot.defined()) bytes += static_cast<int64_t>(slot.nbytes());
    }
    return bytes;
}

at::Tensor to_rgb8(const at::Tensor& frames) {
    QVG_CHECK(frames.defined(), "to_rgb8: frames are an undefined tensor");
    const bool video = frames.dim() == 5 && frames.size(0) == 1 && frames.size(2) == 3;
    const bool images = frames.dim() == 4 && frames.size(1) == 3;
    QVG_CHECK(video || images, "to_rgb8: expected frames [T, 3, H, W] or [1, T, 3, H, W], found {}",
              frames.sizes().vec());
    QVG_CHECK(at::isFloatingType(frames.scalar_type()),
              "to_rgb8: expected floating-point frames, found {}",
              c10::toString(frames.scalar_type()));
    at::Tensor x = video ? frames[0] : frames;  // [T, 3, H, W]
    x = (x.to(at::kFloat) * 0.5 + 0.5).clamp_(0.0, 1.0).mul_(255.0).round_();
    return x.to(at::kByte).permute({0, 2, 3, 1}).contiguous();  // [T, H, W, 3]
}

}  // namespace qvg::core
