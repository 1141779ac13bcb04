#include <qvg/world/walks.h>

#include "noise.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace qvg::world {

using input::Action;
using input::Rotation;
using input::Translation;

ActionList repeat_action(const Action& action, int latents) {
    if (latents < 0) throw std::invalid_argument("repeat_action: negative latent count");
    return ActionList(static_cast<std::size_t>(latents), action);
}

int latents_for_turn(double degrees, const input::ActionStep& step) {
    const double n = degrees / step.rotation_deg;
    if (!(step.rotation_deg > 0.0) || std::abs(n - std::round(n)) > 1e-9) {
        throw std::invalid_argument("a turn of " + std::to_string(degrees) +
                                    " degrees is not a whole number of " +
                                    std::to_string(step.rotation_deg) + " degree steps");
    }
    return static_cast<int>(std::round(n));
}

ActionList square_loop(int side_latents, const input::ActionStep& step, bool turn_right) {
    const int turn = latents_for_turn(90.0, step);
    const Action forward{Translation::kForward, Rotation::kNone};
    const Action rotate{Translation::kNone, turn_right ? Rotation::kYawRight : Rotation::kYawLeft};
    ActionList out;
    for (int side = 0; side < 4; ++side) {
        out.insert(out.end(), static_cast<std::size_t>(side_latents), forward);
        out.insert(out.end(), static_cast<std::size_t>(turn), rotate);
    }
    return out;
}

ActionList out_and_back(int out_latents, const input::ActionStep& step) {
    const int turn = latents_for_turn(180.0, step);
    const Action forward{Translation::kForward, Rotation::kNone};
    const Action rotate{Translation::kNone, Rotation::kYawRight};
    ActionList out;
    for (int leg = 0; leg < 2; ++leg) {
        out.insert(out.end(), static_cast<std::size_t>(out_latents), forward);
        out.insert(out.end(), static_cast<std::size_t>(turn), rotate);
    }
    return out;
}

ActionList random_walk(std::uint64_t seed, const RandomWalkOptions& options,
                       const input::ActionStep& step) {
    if (options.latents < 0) throw std::invalid_argument("random_walk: negative latent count");
    detail::Rng rng(detail::mix64(seed ^ 0x5eed0f3a1c2b4d6eull));
    ActionList out;
    out.reserve(static_cast<std::size_t>(options.latents));
    Translation translation = Translation::kForward;
    int yaw = 0;    // -1 left, 0, +1 right
    int pitch = 0;  // -1 down, 0, +1 up
    double pitch_deg = 0.0;
    for (int i = 0; i < options.latents; ++i) {
        if (rng.uniform() >= options.keep_probability) {
            if (rng.uniform() < options.forward_weight) {
                translation = rng.uniform() < 0.5
                                  ? Translation::kForward
                                  : (rng.uniform() < 0.5 ? Translation::kForwardLeft
                                                         : Translation::kForwardRight);
            } else {
                translation = static_cast<Translation>(rng.below(9));
            }
        }
        if (rng.uniform() >= options.turn_keep_probability) {
            yaw = rng.uniform() < options.turn_probability ? (rng.uniform() < 0.5 ? -1 : 1) : 0;
            // Pitch drifts back toward level more often than away from it.
            const double r = rng.uniform();
            pitch = r < 0.15 ? 1 : (r < 0.3 ? -1 : 0);
            if (pitch == 0 && std::abs(pitch_deg) > 0.0 && rng.uniform() < 0.5) {
                pitch = pitch_deg > 0.0 ? -1 : 1;
            }
        }
        if (std::abs(pitch_deg + pitch * step.rotation_deg) > options.max_pitch_deg) pitch = 0;
        pitch_deg += pitch * step.rotation_deg;
        // Rotation labels from the (yaw, pitch) signs.
        static constexpr Rotation kTable[3][3] = {
            {Rotation::kLeftDown, Rotation::kYawLeft, Rotation::kLeftUp},
            {Rotation::kPitchDown, Rotation::kNone, Rotation::kPitchUp},
            {Rotation::kRightDown, Rotation::kYawRight, Rotation::kRightUp}};
        out.push_back({translation, kTable[yaw + 1][pitch + 1]});
    }
    return out;
}

}  // namespace qvg::world
