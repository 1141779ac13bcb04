#pragma once
// The generation thread. It owns the model session and the KV cache: each step it reads the
// latest input from the mailbox (or the next actions of a trajectory being replayed), generates
// one block of latent frames, decodes them (a world model makes RGB frames itself), renders the
// procedural world from the same poses as a reference, and publishes the video frames one by one to
// a triple buffer at the target frame rate, calling `wakeup` after each (which only posts a repaint
// to the viewport). Commands from the UI are picked up between blocks. Exceptions become status
// messages; the thread keeps running. Locks: see LOCKING.md.

#include "cache_settings.h"
#include "input_mailbox.h"
#include "model_loader.h"
#include "triple_buffer.h"
#include "viewer_frame.h"

#include <qvg/input/key_map.h>
#include <qvg/input/trajectory.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace qvg::render {
class Recorder;
}

namespace qvg::app {

struct WorkerOptions {
    std::uint64_t seed = 0;  // noise and world
    CacheSettings cache;
    int fps = 16;               // video frames shown per second (at most)
    int frames_per_latent = 4;  // video frames per latent frame (Wan's 4x temporal compression)
    int reference_width = 256;  // the ground-truth pane
    int reference_height = 160;
    double fov_deg = 90.0;
    input::KeyMap key_map = input::default_key_map();
    std::optional<input::Trajectory> replay;
    std::int64_t stop_after_frames = 0;  // pause for good after this many video frames; 0: never
    bool paused = false;
};

struct WorkerStatus {
    std::int64_t frames_generated = 0;  // video frames since start (all resets included)
    std::int64_t chunks = 0;
    std::string message;  // the newest message for the status bar
    std::uint64_t message_serial = 0;
    bool message_is_error = false;
    bool finished = false;   // stop_after_frames reached or the replay ended
    bool has_model = false;  // a session is running
};

class GenerationWorker {
  public:
    GenerationWorker(std::shared_ptr<const LoadedModel> model, WorkerOptions options,
                     std::function<void()> wakeup);
    ~GenerationWorker();  // stops and joins
    GenerationWorker(const GenerationWorker&) = delete;
    GenerationWorker& operator=(const GenerationWorker&) = delete;

    TripleBuffer<ViewerFrame>& frames() { return frames_; }
    InputMailbox& input() { return input_; }

    // Commands (UI thread); applied before the next block.
    // With a cache, the new model starts with it (both are taken together, so the model never
    // runs with the cache meant for the one before).
    void set_model(std::shared_ptr<const LoadedModel> model,
                   std::optional<CacheSettings> cache = std::nullopt);
    void set_paused(bool paused);
    void step();   // one block while paused
    void reset();  // back to frame 0 and the spawn point, same seed
    void set_seed(std::uint64_t seed);
    void set_stages(int stages);                 // live
    void set_cache(const CacheSettings& cache);  // restarts the stream
    void set_key_map(const input::KeyMap& map);
    void set_recorder(std::shared_ptr<render::Recorder> recorder);  // null stops feeding it
    void set_replay(std::optional<input::Trajectory> trajectory);   // restarts the stream

    // The actions and poses since the last restart, ready to save.
    input::Trajectory trajectory() const;
    WorkerStatus status() const;

  private:
    struct Session;
    struct Commands {
        std::shared_ptr<const LoadedModel> model;  // set: switch to it
        bool reset = false;
        std::optional<std::uint64_t> seed;
        std::optional<int> stages;
        std::optional<CacheSettings> cache;
        std::optional<input::KeyMap> key_map;
        std::optional<std::optional<input::Trajectory>> replay;
        bool recorder_changed = false;
        std::shared_ptr<render::Recorder> recorder;
    };

    void run();
    // Waits until there is work; returns false when the thread should end.
    bool wait_for_work(Commands& commands, bool& stepping);
    void apply(Commands& commands);
    // A world model's stream: its session on the fresh cache, primed with one block of ground
    // truth rendered (standing still, action label 0) at the start pose.
    static void start_world_model(Session& s);
    void generate_block();
    void post_message(const std::string& text, bool is_error);

    std::function<void()> wakeup_;
    TripleBuffer<ViewerFrame> frames_;
    InputMailbox input_;

    // Guarded by mutex_.
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    Commands pending_;
    bool has_pending_ = false;
    bool paused_ = false;
    int steps_requested_ = 0;
    bool stop_ = false;
    WorkerStatus status_;
    input::Trajectory trajectory_;

    // Owned by the generation thread; touched by no other thread once it runs.
    std::unique_ptr<Session> session_;

    std::thread thread_;
};

}  // namespace qvg::app
