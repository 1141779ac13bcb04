#include "qvg/core/synthetic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "qvg/core/error.h"
#include "qvg/core/rng.h"

namespace qvg::core {

at::Tensor synthetic_tokens(const SyntheticTokens& s) {
    QVG_CHECK(s.frames > 0 && s.height > 0 && s.width > 0 && s.heads > 0 && s.head_dim > 0 &&
                  s.regions > 0,
              "synthetic tokens need positive sizes");
    const bool key = s.role == KVRole::kKey;
    std::vector<at::Tensor> heads;
    for (int64_t h = 0; h < s.heads; ++h) {
        // Everything that defines the sequence depends on (seed, role, head) only, so any frame
        // range of the same sequence is consistent with any other.
        const uint64_t head_seed =
            Rng::mix(Rng::mix(s.seed, key ? 1 : 2), static_cast<uint64_t>(h));
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(head_seed);
        const auto f32 = at::TensorOptions().dtype(at::kFloat);
        const int64_t d = s.head_dim;
        at::Tensor prototypes = at::randn({s.regions, d}, gen, f32) * 1.2;
        at::Tensor centres = at::rand({s.regions, 2}, gen, f32);               // in [0, 1)^2
        at::Tensor drift = (at::rand({s.regions, 2}, gen, f32) - 0.5) * 0.02;  // per frame
        constexpr int64_t kWaves = 8;
        at::Tensor freq = at::randn({kWaves, 3}, gen, f32) * at::tensor({0.15f, 3.0f, 3.0f});
        at::Tensor phase = at::rand({kWaves}, gen, f32) * 6.2831853f;
        at::Tensor directions = at::randn({kWaves, d}, gen, f32) * 0.35;
        at::Tensor channel_scale = at::exp(at::randn({d}, gen, f32) * 0.3);
        at::Tensor channel_offset = at::randn({d}, gen, f32) * (key ? 0.8 : 0.2);
        at::Tensor outliers = at::randperm(d, gen).narrow(0, 0, key ? 4 : 2);
        channel_scale.index_put_({outliers},
                                 channel_scale.index({outliers}) * (key ? 12.0f : 5.0f));

        // Grid coordinates of every token: t, y, x.
        at::Tensor t = at::arange(s.first_frame, s.first_frame + s.frames, f32);
        at::Tensor y = (at::arange(s.height, f32) + 0.5) / s.height;
        at::Tensor x = (at::arange(s.width, f32) + 0.5) / s.width;
        auto grid = at::meshgrid({t, y, x}, "ij");
        at::Tensor coords = at::stack({grid[0], grid[1], grid[2]}, -1).reshape({-1, 3});  // [N, 3]

        // Region of each token: nearest drifting centre (wrapping at the borders).
        at::Tensor moved =
            centres.unsqueeze(0) + drift.unsqueeze(0) * t.view({-1, 1, 1});  // [F, R, 2]
        moved = moved - moved.floor();
        at::Tensor pos = coords.narrow(1, 1, 2).view({s.frames, s.height * s.width, 1, 2});
        at::Tensor delta = (pos - moved.unsqueeze(1)).abs();
        delta = at::minimum(delta, 1.0 - delta);
        at::Tensor label = delta.pow(2).sum(-1).argmin(-1).reshape({-1});  // [N]

        at::Tensor waves = at::sin(at::matmul(coords, freq.t()) + phase);  // [N, W]
        // Noise drawn per frame from its own stream, so frames agree across calls.
        std::vector<at::Tensor> noise;
        for (int64_t f = 0; f < s.frames; ++f) {
            at::Generator fg = at::make_generator<at::CPUGeneratorImpl>(
                Rng::mix(head_seed, static_cast<uint64_t>(s.first_frame + f)));
            noise.push_back(at::randn({s.height * s.width, d}, fg, f32));
        }
        at::Tensor tokens =
            prototypes.index({label}) + at::matmul(waves, directions) + at::cat(noise, 0) * 0.08;
        tokens = tokens * channel_scale + channel_offset;
        heads.push_back(tokens);
    }
    return at::stack(heads, 0).unsqueeze(0).to(at::kBFloat16);
}

}  // namespace qvg::core
