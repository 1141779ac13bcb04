// Wan VAE decoder weights: walks the module tree the config implies, checks every tensor the
// checkpoint should hold, and reports all problems in one error so that a wrong config or a
// truncated checkpoint is diagnosed in one go.

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "qvg/core/error.h"
#include "qvg/core/weights.h"
#include "wan_vae_internal.h"

namespace qvg::core::wan_vae_detail {
namespace {

using Shape = std::vector<int64_t>;

// Walks the module tree once: records what the checkpoint must hold and picks up what it does
// hold. finish() then reports every problem at once through check_weights.
class Binder {
  public:
    Binder(const TensorMap& map, at::Device device, at::ScalarType dtype)
        : map_(map), device_(device), dtype_(dtype) {}

    at::Tensor take(const std::string& key, const Shape& shape, bool required = true) {
        auto it = map_.find(key);
        const bool present = it != map_.end() && it->second.defined();
        if (!present && !required) return {};
        expected_.push_back({key, shape});
        if (!present || it->second.sizes() != at::IntArrayRef(shape)) return {};
        const at::Tensor& t = it->second;
        if (!at::isFloatingType(t.scalar_type())) {
            wrong_dtype_.push_back(fmt::format("{} {}", key, c10::toString(t.scalar_type())));
            return {};
        }
        return t.to(device_, dtype_).contiguous();
    }

    WanVaeConv conv(const std::string& key, const Shape& weight_shape) {
        WanVaeConv c;
        c.weight = take(key + ".weight", weight_shape);
        c.bias = take(key + ".bias", {weight_shape[0]});
        return c;
    }

    WanVaeConv conv3d(const std::string& key, int64_t out, int64_t in, int64_t kt, int64_t ks) {
        return conv(key, {out, in, kt, ks, ks});
    }

    // RMS_norm: gamma always, bias only where the checkpoint has one.
    WanVaeNorm norm(const std::string& key, int64_t channels, bool images) {
        const Shape shape = images ? Shape{channels, 1, 1} : Shape{channels, 1, 1, 1};
        WanVaeNorm n;
        n.gamma = take(key + ".gamma", shape);
        n.bias = take(key + ".bias", shape, /*required=*/false);
        return n;
    }

    WanVaeResBlock res_block(const std::string& key, int64_t in, int64_t out) {
        WanVaeResBlock b;
        b.norm1 = norm(key + ".residual.0", in, false);
        b.conv1 = conv3d(key + ".residual.2", out, in, 3, 3);
        b.norm2 = norm(key + ".residual.3", out, false);
        b.conv2 = conv3d(key + ".residual.6", out, out, 3, 3);
        if (in != out) b.shortcut = conv3d(key + ".shortcut", out, in, 1, 1);
        return b;
    }

    // Throws FormatError for anything missing, mis-shaped, left over under the decoder's prefixes
    // (other keys, e.g. the encoder's, are not ours to judge) or not floating point.
    void finish(const WanVaeConfig& config) const {
        const std::string what = fmt::format(
            "Wan VAE decoder (base_dim {}, z_dim {}, dim_mult {}, num_res_blocks {}, "
            "temporal_upsample {})",
            config.base_dim, config.z_dim, config.dim_mult, config.num_res_blocks,
            std::vector<int>(config.temporal_upsample.begin(), config.temporal_upsample.end()));
        TensorMap ours;
        for (const auto& [key, t] : map_) {
            if ((key.starts_with("decoder.") || key.starts_with("conv2.")) && t.defined()) {
                ours.emplace(key, t);
            }
        }
        check_weights(ours, expected_, what);
        if (!wrong_dtype_.empty()) {
            throw FormatError(fmt::format("{}: expected floating-point weights, found {}", what,
                                          fmt::join(wrong_dtype_, ", ")));
        }
    }

  private:
    const TensorMap& map_;
    at::Device device_;
    at::ScalarType dtype_;
    std::vector<ExpectedTensor> expected_;
    std::vector<std::string> wrong_dtype_;
};

}  // namespace

size_t cache_slot_count(const WanVaeConfig& config) {
    // conv1 + two middle blocks + per stage (blocks + a time conv) + head.
    size_t slots = 1 + 2 * 2 + 1;
    for (size_t i = 0; i < config.dim_mult.size(); ++i) {
        slots += 2 * static_cast<size_t>(config.num_res_blocks + 1);
        if (i < config.temporal_upsample.size() && config.temporal_upsample[i]) slots += 1;
    }
    return slots;
}

WanVaeWeights load_weights(const TensorMap& map, const WanVaeConfig& config, at::Device device,
                           at::ScalarType dtype) {
    Binder bind(map, device, dtype);
    const auto in_dims = config.stage_in_dims();
    const auto out_dims = config.stage_out_dims();
    const int64_t z = config.z_dim;
    const int64_t c0 = in_dims.front();

    WanVaeWeights w;
    w.conv2 = bind.conv3d("conv2", z, z, 1, 1);
    w.conv_in = bind.conv3d("decoder.conv1", c0, z, 3, 3);
    w.middle0 = bind.res_block("decoder.middle.0", c0, c0);
    w.attention.norm = bind.norm("decoder.middle.1.norm", c0, true);
    w.attention.to_qkv = bind.conv("decoder.middle.1.to_qkv", {3 * c0, c0, 1, 1});
    w.attention.proj = bind.conv("decoder.middle.1.proj", {c0, c0, 1, 1});
    w.middle2 = bind.res_block("decoder.middle.2", c0, c0);

    int index = 0;  // decoder.upsamples is one flat Sequential across the stages
    for (size_t s = 0; s < out_dims.size(); ++s) {
        WanVaeStage stage;
        int64_t in = in_dims[s];
        const int64_t out = out_dims[s];
        for (int64_t b = 0; b <= config.num_res_blocks; ++b) {
            stage.blocks.push_back(
                bind.res_block(fmt::format("decoder.upsamples.{}", index++), in, out));
            in = out;
        }
        if (s + 1 < out_dims.size()) {
            const std::string key = fmt::format("decoder.upsamples.{}", index++);
            stage.has_upsample = true;
            stage.upsample.conv = bind.conv(key + ".resample.1", {out / 2, out, 3, 3});
            if (config.temporal_upsample[s]) {
                stage.upsample.time_conv = bind.conv(key + ".time_conv", {2 * out, out, 3, 1, 1});
            }
        }
        w.stages.push_back(std::move(stage));
    }
    const int64_t c_last = out_dims.back();
    w.head_norm = bind.norm("decoder.head.0", c_last, false);
    w.head_conv = bind.conv3d("decoder.head.2", 3, c_last, 3, 3);
    bind.finish(config);

    // Upstream builds scale = [mean, 1 / std] in the latent dtype and divides by scale[1].
    w.latent_mean = at::tensor(config.latent_mean).to(device, dtype);
    w.latent_inv_std = at::reciprocal(at::tensor(config.latent_std).to(device, dtype));
    return w;
}

}  // namespace qvg::core::wan_vae_detail
