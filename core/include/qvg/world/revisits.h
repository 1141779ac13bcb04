#pragma once
// Revisits along a camera path: frames that show a place the path showed long before, found from
// the poses alone (the ground truth knows where the camera was). They are where a world model's
// memory can be judged: with enough history it can redraw what it saw, without it has to guess.
//
// Frame j revisits frame i when
//   - i <= j - min_gap_frames (seen long enough ago that recent context cannot explain it),
//   - their map positions lie within max_distance_m of each other (horizontally, on the torus),
//   - their viewing directions differ by at most max_angle_deg (the angle between the two
//     cameras' forward axes, so yaw and pitch both count; at the default 90 degree field of view
//     a 30 degree turn still shares two thirds of the picture).
// A frame is a revisit frame when it revisits at least one earlier frame.

#include <qvg/input/camera.h>
#include <qvg/world/world.h>

#include <span>
#include <vector>

namespace qvg::world {

struct RevisitOptions {
    double max_distance_m = 4.0;  // two latents of walking at the default step
    double max_angle_deg = 30.0;
    int min_gap_frames = 64;
};

struct Revisit {
    int frame = 0;          // the revisit frame j
    int first_seen = 0;     // the earliest frame it revisits
    int last_seen = 0;      // the latest frame it revisits (<= frame - min_gap_frames)
    double distance_m = 0;  // to last_seen
    double angle_deg = 0;   // to last_seen
};

// The revisit frames among poses[from_frame..], ascending; earlier frames (context) count as
// places seen. Throws std::invalid_argument for a negative distance, angle or gap, or from_frame
// outside 0..poses.size().
std::vector<Revisit> find_revisits(const World& world, std::span<const input::CameraState> poses,
                                   const RevisitOptions& options, int from_frame = 0);

}  // namespace qvg::world
