// Wan VAE decoder forward pass for one latent frame, with the causal feature cache.
//
// Every causal conv with a time kernel of 3 owns a cache slot holding the last two frames of its
// input. Prepending them to the next input replaces the zero padding, which makes running the
// decoder one latent frame at a time equal to running it on the whole sequence. The temporal
// upsamplers skip their time conv on a video's very first latent frame (1 frame in, 1 frame out)
// and see zero history on the second one; their slot starts as two zero frames to express that.

#include <cassert>
#include <cmath>

#include <ATen/ATen.h>

#include "wan_vae_internal.h"

namespace qvg::core::wan_vae_detail {
namespace {

constexpr int64_t kCacheFrames = 2;  // upstream CACHE_T: time kernel 3 needs 2 past frames

// Hands out the cache slots in call order.
class SlotCursor {
  public:
    explicit SlotCursor(std::vector<at::Tensor>& slots) : slots_(slots) {}
    at::Tensor* next() {
        assert(index_ < slots_.size());
        return &slots_[index_++];
    }
    size_t used() const { return index_; }

  private:
    std::vector<at::Tensor>& slots_;
    size_t index_ = 0;
};

// RMS_norm: F.normalize over channels (dim 1), times sqrt(C) and gamma, plus bias if any.
at::Tensor rms_norm(const at::Tensor& x, const WanVaeNorm& norm) {
    const double scale = std::sqrt(static_cast<double>(x.size(1)));
    at::Tensor denom = at::linalg_vector_norm(x, 2, at::IntArrayRef{1}, /*keepdim=*/true);
    at::Tensor y = x / denom.clamp_min_(1e-12);
    y.mul_(scale).mul_(norm.gamma);
    if (norm.bias.defined()) y.add_(norm.bias);
    return y;
}

// RMS_norm then SiLU, the pre-activation of every conv in the residual blocks and the head.
at::Tensor norm_silu(const at::Tensor& x, const WanVaeNorm& norm) {
    at::Tensor y = rms_norm(x, norm);
    at::silu_(y);
    return y;
}

// Causal conv: x [B, C, T, H, W] -> [B, out, T, H, W]. Space is zero padded on both sides, time
// only in front, by the cached frames first and zeros for whatever they do not cover.
at::Tensor causal_conv(const WanVaeConv& conv, const at::Tensor& x, at::Tensor* slot) {
    const int64_t time_pad = conv.weight.size(2) - 1;
    const int64_t space_pad = (conv.weight.size(3) - 1) / 2;
    at::Tensor input = x;
    int64_t cached = 0;
    if (slot != nullptr) {
        if (slot->defined()) {
            cached = slot->size(2);
            input = at::cat({*slot, x}, 2);
        }
        const int64_t t = input.size(2);
        *slot = input.slice(2, std::max<int64_t>(0, t - kCacheFrames)).clone();
    }
    assert(cached <= time_pad);
    if (time_pad > cached) {
        auto sizes = input.sizes().vec();
        sizes[2] = time_pad - cached;
        input = at::cat({at::zeros(sizes, input.options()), input}, 2);
    }
    return at::conv3d(input, conv.weight, conv.bias, /*stride=*/{1, 1, 1},
                      /*padding=*/{0, space_pad, space_pad});
}

at::Tensor res_block(const WanVaeResBlock& block, const at::Tensor& x, SlotCursor& slots) {
    at::Tensor skip = block.shortcut.weight.defined() ? causal_conv(block.shortcut, x, nullptr) : x;
    at::Tensor y = norm_silu(x, block.norm1);
    y = causal_conv(block.conv1, y, slots.next());
    y = norm_silu(y, block.norm2);
    y = causal_conv(block.conv2, y, slots.next());
    return y.add_(skip);
}

// [B, C, T, H, W] <-> [B*T, C, H, W] for the per-frame 2D layers.
at::Tensor to_images(const at::Tensor& x) {
    return x.permute({0, 2, 1, 3, 4})
        .reshape({x.size(0) * x.size(2), x.size(1), x.size(3), x.size(4)});
}

at::Tensor from_images(const at::Tensor& images, int64_t batch) {
    const int64_t frames = images.size(0) / batch;
    return images.reshape({batch, frames, images.size(1), images.size(2), images.size(3)})
        .permute({0, 2, 1, 3, 4});
}

// Single-head self-attention over the H*W pixels of each frame, plus the input.
at::Tensor attention(const WanVaeAttention& attn, const at::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(3), w = x.size(4);
    at::Tensor images = rms_norm(to_images(x), attn.norm);                      // [BT, C, H, W]
    at::Tensor qkv = at::conv2d(images, attn.to_qkv.weight, attn.to_qkv.bias);  // [BT, 3C, H, W]
    qkv = qkv.reshape({qkv.size(0), 1, 3 * c, h * w}).permute({0, 1, 3, 2}).contiguous();
    const auto parts = qkv.chunk(3, -1);  // q, k, v: [BT, 1, HW, C]
    at::Tensor out = at::scaled_dot_product_attention(parts[0], parts[1], parts[2]);
    out = out.squeeze(1).permute({0, 2, 1}).reshape({qkv.size(0), c, h, w});
    out = at::conv2d(out, attn.proj.weight, attn.proj.bias);
    return x + from_images(out, b);
}

// Resample: optional time doubling, then nearest x2 in space and a 3x3 conv halving channels.
at::Tensor upsample(const WanVaeUpsample& up, at::Tensor x, SlotCursor& slots) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(3), w = x.size(4);
    if (up.time_conv.weight.defined()) {
        at::Tensor* slot = slots.next();
        if (!slot->defined()) {
            *slot = at::zeros({b, c, kCacheFrames, h, w}, x.options());
        } else {
            const int64_t t = x.size(2);
            at::Tensor y = causal_conv(up.time_conv, x, slot);  // [B, 2C, T, H, W]
            // Channel halves are the even and odd output frames.
            x = y.view({b, 2, c, t, h, w}).permute({0, 2, 3, 1, 4, 5}).reshape({b, c, 2 * t, h, w});
        }
    }
    at::Tensor images = to_images(x);
    // Upstream upsamples in fp32 (nearest is exact, so this only matters for the dtype round trip).
    at::Tensor big =
        at::upsample_nearest2d(images.to(at::kFloat), {2 * h, 2 * w}).to(images.scalar_type());
    big = at::conv2d(big, up.conv.weight, up.conv.bias, /*stride=*/{1, 1}, /*padding=*/{1, 1});
    return from_images(big, b).contiguous();
}

}  // namespace

at::Tensor decode_latent_frame(const WanVaeWeights& weights, const at::Tensor& z,
                               std::vector<at::Tensor>& cache) {
    SlotCursor slots(cache);
    at::Tensor x = causal_conv(weights.conv2, z, nullptr);
    x = causal_conv(weights.conv_in, x, slots.next());
    x = res_block(weights.middle0, x, slots);
    x = attention(weights.attention, x);
    x = res_block(weights.middle2, x, slots);
    for (const WanVaeStage& stage : weights.stages) {
        for (const WanVaeResBlock& block : stage.blocks) x = res_block(block, x, slots);
        if (stage.has_upsample) x = upsample(stage.upsample, x, slots);
    }
    x = norm_silu(x, weights.head_norm);
    x = causal_conv(weights.head_conv, x, slots.next());
    assert(slots.used() == cache.size());
    return x;
}

}  // namespace qvg::core::wan_vae_detail
