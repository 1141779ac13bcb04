#pragma once
// A whole file mapped privately (copy-on-write): tensors viewing it may be modified in place
// without the change ever reaching the file. Shared by the weight readers.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace qvg::core {

class MappedFile {
  public:
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    const uint8_t* begin() const { return static_cast<const uint8_t*>(data_); }
    size_t size() const { return bytes_; }

    // Throws qvg::core::Error naming the path for a missing, unreadable or non-regular file.
    // An empty file maps to size() == 0.
    static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);

  private:
    MappedFile() = default;
    void* data_ = nullptr;
    size_t bytes_ = 0;
};

}  // namespace qvg::core
