#include "qvg/core/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "mapped_file.h"
#include "qvg/core/error.h"

namespace qvg::core {
namespace {

struct DtypeEntry {
    const char* name;
    at::ScalarType type;
};

constexpr DtypeEntry kDtypes[] = {
    {"F64", at::kDouble},
    {"F32", at::kFloat},
    {"F16", at::kHalf},
    {"BF16", at::kBFloat16},
    {"I64", at::kLong},
    {"I32", at::kInt},
    {"I16", at::kShort},
    {"I8", at::kChar},
    {"U8", at::kByte},
    {"BOOL", at::kBool},
    {"F8_E4M3", at::kFloat8_e4m3fn},
    {"F8_E5M2", at::kFloat8_e5m2},
};

// Header sizes above this are not produced by any real writer and would only waste memory.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void format_fail(const std::filesystem::path& path, const std::string& what) {
    throw FormatError(fmt::format("{}: not a valid safetensors file: {}", path.string(), what));
}

}  // namespace

at::ScalarType scalar_type_from_safetensors(const std::string& dtype) {
    for (const auto& e : kDtypes) {
        if (dtype == e.name) return e.type;
    }
    throw FormatError(fmt::format("unsupported safetensors dtype '{}'", dtype));
}

std::string safetensors_dtype_name(at::ScalarType type) {
    for (const auto& e : kDtypes) {
        if (type == e.type) return e.name;
    }
    throw Error(fmt::format("cannot store dtype {} in safetensors", c10::toString(type)));
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
    auto map = MappedFile::open(path);
    const uint64_t file_bytes = map->size();
    if (file_bytes < 8) {
        format_fail(
            path, fmt::format("file has {} bytes, fewer than the 8-byte header size", file_bytes));
    }
    std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->path_ = path;
    file->map_ = map;

    const uint8_t* bytes = map->begin();
    uint64_t header_bytes = 0;
    for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | bytes[i];
    if (header_bytes > kMaxHeaderBytes || header_bytes > file_bytes - 8) {
        format_fail(path,
                    fmt::format("header claims {} bytes but the file has {} after the size field",
                                header_bytes, file_bytes - 8));
    }
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_bytes);
    } catch (const nlohmann::json::exception& e) {
        format_fail(path, fmt::format("header is not JSON ({})", e.what()));
    }
    if (!header.is_object()) format_fail(path, "header is not a JSON object");
    file->data_ = bytes + 8 + header_bytes;
    const uint64_t data_bytes = file_bytes - 8 - header_bytes;

    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it.value().is_object()) format_fail(path, "__metadata__ is not an object");
            for (auto m = it.value().begin(); m != it.value().end(); ++m) {
                if (m.value().is_string()) file->metadata_[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const auto& v = it.value();
        TensorInfo info;
        info.name = it.key();
        try {
            info.dtype = v.at("dtype").get<std::string>();
            info.shape = v.at("shape").get<std::vector<int64_t>>();
            const auto offsets = v.at("data_offsets").get<std::vector<uint64_t>>();
            if (offsets.size() != 2)
                format_fail(path,
                            fmt::format("tensor '{}': data_offsets needs 2 numbers", info.name));
            info.begin = offsets[0];
            info.end = offsets[1];
        } catch (const nlohmann::json::exception& e) {
            format_fail(path, fmt::format("tensor '{}': {}", info.name, e.what()));
        }
        at::ScalarType type;
        try {
            type = scalar_type_from_safetensors(info.dtype);
        } catch (const FormatError& e) {
            format_fail(path, fmt::format("tensor '{}': {}", info.name, e.what()));
        }
        uint64_t numel = 1;
        for (int64_t d : info.shape) {
            if (d < 0)
                format_fail(path, fmt::format("tensor '{}' has a negative dimension", info.name));
            numel *= static_cast<uint64_t>(d);
        }
        const uint64_t expect = numel * c10::elementSize(type);
        if (info.end < info.begin || info.end > data_bytes) {
            format_fail(path,
                        fmt::format("tensor '{}' spans bytes [{}, {}) but the data section has {} "
                                    "(file truncated?)",
                                    info.name, info.begin, info.end, data_bytes));
        }
        if (info.end - info.begin != expect) {
            format_fail(path, fmt::format("tensor '{}' ({} {}) needs {} bytes but has {}",
                                          info.name, info.dtype, fmt::join(info.shape, "x"), expect,
                                          info.end - info.begin));
        }
        file->tensors_.push_back(std::move(info));
    }
    std::sort(file->tensors_.begin(), file->tensors_.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
    uint64_t last_end = 0;  // end of the last non-empty tensor so far
    for (size_t i = 0; i < file->tensors_.size(); ++i) {
        file->index_[file->tensors_[i].name] = i;
        // Empty tensors occupy no bytes, so they cannot overlap anything.
        const TensorInfo& cur = file->tensors_[i];
        if (i > 0 && cur.end > cur.begin && cur.begin < last_end) {
            format_fail(path, fmt::format("tensors '{}' and '{}' overlap",
                                          file->tensors_[i - 1].name, file->tensors_[i].name));
        }
        if (cur.end > cur.begin) last_end = std::max(last_end, cur.end);
    }
    file->self_ = file;
    return file;
}

SafetensorsFile::~SafetensorsFile() = default;

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) > 0; }

int64_t SafetensorsFile::metadata_int(const std::string& key, int64_t fallback) const {
    const auto it = metadata_.find(key);
    if (it == metadata_.end()) return fallback;
    try {
        size_t used = 0;
        const long long v = std::stoll(it->second, &used);
        if (used == it->second.size()) return v;
    } catch (const std::exception&) {
    }
    throw FormatError(
        fmt::format("{}: metadata {} = '{}' is not an integer", path_.string(), key, it->second));
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) {
        throw Error(fmt::format("{}: no tensor named '{}' ({} tensors in the file)", path_.string(),
                                name, tensors_.size()));
    }
    return tensors_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
    const TensorInfo& ti = info(name);
    const at::ScalarType type = scalar_type_from_safetensors(ti.dtype);
    auto* ptr = const_cast<uint8_t*>(data_ + ti.begin);
    const auto options = at::TensorOptions().dtype(type).device(at::kCPU);
    const size_t elem = c10::elementSize(type);
    if (ti.end == ti.begin) return at::empty(ti.shape, options);
    if (reinterpret_cast<uintptr_t>(ptr) % elem != 0) {
        at::Tensor out = at::empty(ti.shape, options);
        std::memcpy(out.data_ptr(), ptr, ti.end - ti.begin);
        return out;
    }
    auto keep = self_.lock();
    return at::from_blob(
        ptr, ti.shape, [keep](void*) {}, options);
}

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::vector<at::Tensor> cpu;
    cpu.reserve(tensors.size());
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        QVG_CHECK(t.defined(), "save_safetensors: tensor '{}' is undefined", name);
        QVG_CHECK(!header.contains(name), "save_safetensors: duplicate tensor name '{}'", name);
        at::Tensor c = t.detach().to(at::kCPU).contiguous();
        const uint64_t n = c.nbytes();
        header[name] = {{"dtype", safetensors_dtype_name(c.scalar_type())},
                        {"shape", c.sizes().vec()},
                        {"data_offsets", {offset, offset + n}}};
        offset += n;
        cpu.push_back(std::move(c));
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned

    const auto tmp = std::filesystem::path(path.string() + ".partial");
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw Error(fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(errno)));
        uint8_t size_field[8];
        const uint64_t hs = text.size();
        for (int i = 0; i < 8; ++i) size_field[i] = static_cast<uint8_t>(hs >> (8 * i));
        out.write(reinterpret_cast<const char*>(size_field), 8);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        for (const auto& c : cpu) {
            out.write(static_cast<const char*>(c.data_ptr()),
                      static_cast<std::streamsize>(c.nbytes()));
        }
        out.flush();
        if (!out) {
            const int err = errno;
            out.close();
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            throw Error(fmt::format("writing '{}' failed: {}", path.string(), std::strerror(err)));
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        throw Error(
            fmt::format("cannot move the finished file to '{}': {}", path.string(), ec.message()));
    }
}

}  // namespace qvg::core
