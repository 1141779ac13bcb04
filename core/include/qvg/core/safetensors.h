#pragma once
// Safetensors files: memory-mapped reading (zero-copy where alignment allows) and writing.
// Format: u64 little-endian header size, JSON header {name: {dtype, shape, data_offsets}},
// then the raw little-endian data.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qvg::core {

class MappedFile;

struct TensorInfo {
    std::string name;
    std::string dtype;  // safetensors spelling: F32, BF16, U8, ...
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // byte offsets into the data section
    uint64_t end = 0;
};

class SafetensorsFile {
  public:
    // Maps the file and validates the whole header (offsets, sizes, dtypes).
    // Throws FormatError naming the file and the problem.
    static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::filesystem::path& path() const { return path_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    // A metadata value as an integer, or `fallback` when the key is absent. Throws FormatError
    // naming the file and key when the value is not an integer.
    int64_t metadata_int(const std::string& key, int64_t fallback) const;
    bool contains(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const;

    // A CPU tensor viewing the mapped bytes (copy-on-write mapping: writes never reach the file).
    // The tensor keeps the mapping alive. Copies when the data is not aligned for its dtype.
    at::Tensor tensor(const std::string& name) const;

  private:
    SafetensorsFile() = default;
    std::filesystem::path path_;
    std::shared_ptr<const MappedFile> map_;
    const uint8_t* data_ = nullptr;  // start of the data section
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
    std::weak_ptr<const SafetensorsFile> self_;
    friend struct SafetensorsAccess;
};

// Writes tensors (any device; contiguous copies are made on the CPU) atomically: the file
// appears complete under its name or not at all. Throws Error on I/O failure (disk full...).
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// "F32" <-> at::ScalarType. Throws for dtypes qvg cannot hold.
at::ScalarType scalar_type_from_safetensors(const std::string& dtype);
std::string safetensors_dtype_name(at::ScalarType type);

}  // namespace qvg::core
