// Recorder: the producer side copies into a slot and leaves; the encoder thread owns the writer.
// Slots move kFree -> kFilling (producer, copying without the lock) -> kReady -> kEncoding
// (encoder thread, reading without the lock) -> kFree. Producers take slots in ring order, and the
// encoder takes them in the same order, so frames keep the order in which push() took their slot.

#include <qvg/render/recorder.h>

#include <qvg/render/mp4_writer.h>

#include <fmt/format.h>

#include <cstring>
#include <exception>

namespace qvg::render {

namespace {

std::size_t checked_frame_bytes(const std::filesystem::path& path, const RecorderOptions& o) {
    if (o.ring_slots < 1) {
        throw RecorderError(fmt::format("cannot record '{}': ring_slots must be at least 1, got {}",
                                        path.string(), o.ring_slots));
    }
    if (o.width <= 0 || o.height <= 0) {
        throw RecorderError(
            fmt::format("cannot record '{}': frame size must be positive, got {}x{}", path.string(),
                        o.width, o.height));
    }
    return static_cast<std::size_t>(o.width) * 3 * static_cast<std::size_t>(o.height);
}

}  // namespace

Recorder::Recorder(const std::filesystem::path& path, RecorderOptions options)
    : path_(path),
      options_(std::move(options)),
      frame_bytes_(checked_frame_bytes(path_, options_)),
      slots_(static_cast<std::size_t>(options_.ring_slots)) {
    for (Slot& slot : slots_) slot.rgb.resize(frame_bytes_);
    thread_ = std::thread([this] { run(); });
    std::unique_lock lock(mutex_);
    open_cv_.wait(lock, [this] { return open_done_; });
    if (!opened_) {
        const std::string message = stats_.error;
        lock.unlock();
        thread_.join();
        throw RecorderError(message);
    }
}

Recorder::~Recorder() { stop(); }

bool Recorder::push(const FrameView& frame) {
    if (frame.width != options_.width || frame.height != options_.height) {
        throw RecorderError(
            fmt::format("cannot record a {}x{} frame to '{}': the recording is {}x{}", frame.width,
                        frame.height, path_.string(), options_.width, options_.height));
    }
    const std::size_t row_bytes = static_cast<std::size_t>(frame.width) * 3;
    if (!frame.data || frame.stride_bytes < static_cast<int>(row_bytes)) {
        throw RecorderError(fmt::format(
            "cannot record a frame to '{}': expected RGB8 data with a stride of at least {} bytes, "
            "got {} with stride {}",
            path_.string(), row_bytes, frame.data ? "data" : "no data", frame.stride_bytes));
    }
    Slot* slot = nullptr;
    {
        std::lock_guard lock(mutex_);
        ++stats_.frames_pushed;
        Slot& candidate = slots_[write_slot_];
        if (stopping_ || failed_ || candidate.state != SlotState::kFree) {
            ++stats_.frames_dropped;
            return false;
        }
        candidate.state = SlotState::kFilling;
        candidate.frame_index = next_frame_index_++;
        write_slot_ = (write_slot_ + 1) % slots_.size();
        slot = &candidate;
    }
    // The slot is ours until it is marked kReady; copy without holding the lock.
    for (int y = 0; y < frame.height; ++y) {
        std::memcpy(slot->rgb.data() + static_cast<std::size_t>(y) * row_bytes,
                    frame.data + static_cast<std::ptrdiff_t>(y) * frame.stride_bytes, row_bytes);
    }
    {
        std::lock_guard lock(mutex_);
        slot->state = SlotState::kReady;
    }
    work_cv_.notify_one();
    return true;
}

RecorderStats Recorder::stats() const {
    std::lock_guard lock(mutex_);
    RecorderStats s = stats_;
    s.running = opened_ && !stopping_ && !failed_;
    return s;
}

void Recorder::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    work_cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

std::unique_ptr<Mp4Writer> Recorder::open_writer() {
    std::unique_ptr<Mp4Writer> writer;
    std::string error;
    try {
        writer = std::make_unique<Mp4Writer>(path_, options_.width, options_.height, options_.fps);
    } catch (const std::exception& e) {
        error = e.what();
    }
    {
        std::lock_guard lock(mutex_);
        open_done_ = true;
        opened_ = writer != nullptr;
        if (writer) {
            stats_.bytes_written = writer->bytes_written();
        } else {
            stats_.error = error;
            failed_ = true;
        }
    }
    open_cv_.notify_all();
    return writer;
}

void Recorder::run() {
    std::unique_ptr<Mp4Writer> writer = open_writer();
    if (!writer) return;

    for (;;) {
        Slot* slot = nullptr;
        bool write_it = false;
        {
            std::unique_lock lock(mutex_);
            // Leave only when stopping and the next slot holds nothing; a slot still kFilling
            // becomes kReady shortly and is written (or counted) like the others.
            work_cv_.wait(lock, [this] {
                const SlotState next = slots_[read_slot_].state;
                return next == SlotState::kReady || (stopping_ && next == SlotState::kFree);
            });
            slot = &slots_[read_slot_];
            if (slot->state != SlotState::kReady) break;
            slot->state = SlotState::kEncoding;
            write_it = !failed_;
        }

        std::string error;
        std::int64_t bytes = 0;
        if (write_it) {
            try {
                if (options_.before_encode) options_.before_encode(slot->frame_index);
                writer->write(FrameView{slot->rgb.data(), options_.width, options_.height,
                                        options_.width * 3});
            } catch (const std::exception& e) {
                error = e.what();
            }
            bytes = writer->bytes_written();
        }

        std::lock_guard lock(mutex_);
        slot->state = SlotState::kFree;
        read_slot_ = (read_slot_ + 1) % slots_.size();
        if (write_it && error.empty()) {
            ++stats_.frames_written;
        } else {
            // Frames that were waiting when the writer failed are lost like dropped ones.
            ++stats_.frames_dropped;
            if (!error.empty() && !failed_) {
                failed_ = true;
                stats_.error = error;
            }
        }
        if (write_it) stats_.bytes_written = bytes;
    }

    std::string error;
    try {
        writer->close();
    } catch (const std::exception& e) {
        error = e.what();
    }
    const std::int64_t bytes = writer->bytes_written();
    writer.reset();
    std::lock_guard lock(mutex_);
    stats_.bytes_written = bytes;
    if (!error.empty() && !failed_) {
        failed_ = true;
        stats_.error = error;
    }
}

}  // namespace qvg::render
