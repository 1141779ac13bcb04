#pragma once
// Action sequences (one action per latent frame) for making clips: scripted walks whose
// geometry is known (straight lines, turns, loops that close, revisits) and seeded random walks
// with momentum.

#include <qvg/input/action.h>

#include <cstdint>
#include <vector>

namespace qvg::world {

using ActionList = std::vector<input::Action>;

// `latents` copies of one action (straight walks, turns in place, arcs).
ActionList repeat_action(const input::Action& action, int latents);

// The number of latents whose rotations add up to `degrees`; throws std::invalid_argument if
// step.rotation_deg does not divide it (the walk could not close exactly).
int latents_for_turn(double degrees, const input::ActionStep& step);

// A square: side_latents forward, a quarter turn in place, four times. Ends at the start pose
// (position up to rounding, yaw exactly) after 4 * (side_latents + latents_for_turn(90)) latents.
ActionList square_loop(int side_latents, const input::ActionStep& step, bool turn_right = true);

// Out and back: forward out_latents, a half turn, forward out_latents, a half turn. Revisits
// every place of the way out, looking the other way, and ends at the start pose.
ActionList out_and_back(int out_latents, const input::ActionStep& step);

struct RandomWalkOptions {
    int latents = 64;
    double keep_probability = 0.8;  // momentum: the chance to keep the previous translation
    double turn_keep_probability = 0.7;
    double forward_weight = 0.6;  // of the translations drawn anew (the rest split evenly)
    double turn_probability = 0.35;
    double max_pitch_deg = 15.0;  // pitch actions that would leave +-this are not taken
};

// A seeded random walk: the same seed and options give the same actions on every platform.
ActionList random_walk(std::uint64_t seed, const RandomWalkOptions& options,
                       const input::ActionStep& step);

}  // namespace qvg::world
