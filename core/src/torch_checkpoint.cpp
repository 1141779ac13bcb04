// Reading torch.save checkpoints without Python.
//
// Three layers, each distrusting the one below:
//  - a zip reader for the subset torch writes: stored records (no compression), optionally ZIP64,
//    with every offset and size checked against the mapped file;
//  - a restricted unpickler: a small stack machine over the opcodes torch.save emits, where GLOBAL
//    resolves only names from an allow-list (OrderedDict, tensor rebuild functions, storage types,
//    dtypes) and throws for anything else. Nothing in the file can name code that runs;
//  - tensor assembly: persistent ids ('storage', type, key, location, numel) become views of the
//    mapped record archive/data/<key>, and _rebuild_tensor_v2 applies offset/size/stride after a
//    bounds check.
// Objects are arena-owned raw nodes while unpickling, so hostile cycles or deep nesting cannot leak
// or overflow the stack on destruction; the result is converted to an immutable CheckpointValue.

#include "qvg/core/torch_checkpoint.h"

#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <unordered_map>

#include <ATen/ATen.h>

#include "qvg/core/error.h"

namespace qvg::core {

// ---------------------------------------------------------------------------------------------
// CheckpointValue

CheckpointValue CheckpointValue::boolean(bool value) {
    CheckpointValue v;
    v.kind_ = Kind::kBool;
    v.int_ = value ? 1 : 0;
    return v;
}

CheckpointValue CheckpointValue::integer(int64_t value) {
    CheckpointValue v;
    v.kind_ = Kind::kInt;
    v.int_ = value;
    return v;
}

CheckpointValue CheckpointValue::floating(double value) {
    CheckpointValue v;
    v.kind_ = Kind::kFloat;
    v.float_ = value;
    return v;
}

CheckpointValue CheckpointValue::string(std::string value) {
    CheckpointValue v;
    v.kind_ = Kind::kString;
    v.string_ = std::move(value);
    return v;
}

CheckpointValue CheckpointValue::bytes(std::string value) {
    CheckpointValue v;
    v.kind_ = Kind::kBytes;
    v.string_ = std::move(value);
    return v;
}

CheckpointValue CheckpointValue::dtype(at::ScalarType value) {
    CheckpointValue v;
    v.kind_ = Kind::kDtype;
    v.dtype_ = value;
    return v;
}

CheckpointValue CheckpointValue::tensor(at::Tensor value) {
    CheckpointValue v;
    v.kind_ = Kind::kTensor;
    v.tensor_ = std::move(value);
    return v;
}

CheckpointValue CheckpointValue::list(std::vector<CheckpointValue> items) {
    CheckpointValue v;
    v.kind_ = Kind::kList;
    v.children_ = std::make_shared<const Children>(Children{{}, std::move(items)});
    return v;
}

CheckpointValue CheckpointValue::tuple(std::vector<CheckpointValue> items) {
    CheckpointValue v = list(std::move(items));
    v.kind_ = Kind::kTuple;
    return v;
}

CheckpointValue CheckpointValue::dict(std::vector<std::string> keys,
                                      std::vector<CheckpointValue> values) {
    QVG_CHECK(keys.size() == values.size(), "CheckpointValue::dict: {} keys but {} values",
              keys.size(), values.size());
    CheckpointValue v;
    v.kind_ = Kind::kDict;
    v.children_ = std::make_shared<const Children>(Children{std::move(keys), std::move(values)});
    return v;
}

const char* checkpoint_kind_name(CheckpointValue::Kind kind) {
    using K = CheckpointValue::Kind;
    switch (kind) {
        case K::kNone:
            return "None";
        case K::kBool:
            return "bool";
        case K::kInt:
            return "int";
        case K::kFloat:
            return "float";
        case K::kString:
            return "str";
        case K::kBytes:
            return "bytes";
        case K::kDtype:
            return "dtype";
        case K::kTensor:
            return "tensor";
        case K::kList:
            return "list";
        case K::kTuple:
            return "tuple";
        case K::kDict:
            return "dict";
    }
    return "unknown";
}

namespace {

[[noreturn]] void wrong_kind(const char* expected, CheckpointValue::Kind found) {
    throw Error(fmt::format("checkpoint value: expected {}, found {}", expected,
                            checkpoint_kind_name(found)));
}

}  // namespace

bool CheckpointValue::as_bool() const {
    if (kind_ != Kind::kBool) wrong_kind("bool", kind_);
    return int_ != 0;
}

int64_t CheckpointValue::as_int() const {
    if (kind_ != Kind::kInt) wrong_kind("int", kind_);
    return int_;
}

double CheckpointValue::as_float() const {
    if (kind_ == Kind::kInt) return static_cast<double>(int_);
    if (kind_ != Kind::kFloat) wrong_kind("float", kind_);
    return float_;
}

const std::string& CheckpointValue::as_string() const {
    if (kind_ != Kind::kString && kind_ != Kind::kBytes) wrong_kind("str", kind_);
    return string_;
}

at::ScalarType CheckpointValue::as_dtype() const {
    if (kind_ != Kind::kDtype) wrong_kind("dtype", kind_);
    return dtype_;
}

const at::Tensor& CheckpointValue::as_tensor() const {
    if (kind_ != Kind::kTensor) wrong_kind("tensor", kind_);
    return tensor_;
}

const std::vector<CheckpointValue>& CheckpointValue::items() const {
    if (kind_ != Kind::kList && kind_ != Kind::kTuple && kind_ != Kind::kDict) {
        wrong_kind("list, tuple or dict", kind_);
    }
    return children_->values;
}

const std::vector<std::string>& CheckpointValue::keys() const {
    if (kind_ != Kind::kDict) wrong_kind("dict", kind_);
    return children_->keys;
}

const CheckpointValue* CheckpointValue::find(const std::string& key) const {
    const auto& k = keys();
    for (size_t i = 0; i < k.size(); ++i) {
        if (k[i] == key) return &children_->values[i];
    }
    return nullptr;
}

const CheckpointValue& CheckpointValue::at(const std::string& key) const {
    if (const CheckpointValue* v = find(key)) return *v;
    throw Error(
        fmt::format("checkpoint has no entry '{}' (entries: {})", key, fmt::join(keys(), ", ")));
}

// ---------------------------------------------------------------------------------------------
// Zip archive

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndBytes = 22;
constexpr size_t kMaxCommentBytes = 0xffff;

using Mapping = MappedFile;

uint64_t read_le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// CRC-32 (IEEE, reflected), as zip records it. Used on the small records only: checking every
// tensor record would read the whole multi-gigabyte file that the mapping avoids touching.
uint32_t crc32(const uint8_t* data, uint64_t size) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    uint32_t c = 0xffffffffu;
    for (uint64_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

struct ZipEntry {
    uint64_t data_offset = 0;
    uint64_t size = 0;  // uncompressed
    uint64_t compressed_size = 0;
    uint32_t crc = 0;
    uint16_t method = 0;
    uint16_t flags = 0;
};

class ZipArchive {
  public:
    ZipArchive(std::filesystem::path path, std::shared_ptr<const Mapping> map)
        : path_(std::move(path)), map_(std::move(map)) {
        parse();
    }

    [[noreturn]] void fail(const std::string& what) const {
        throw FormatError(
            fmt::format("{}: not a valid torch checkpoint: {}", path_.string(), what));
    }

    const std::map<std::string, ZipEntry>& entries() const { return entries_; }
    bool contains(const std::string& name) const { return entries_.count(name) > 0; }

    // The bytes of a stored record; throws for compressed or encrypted ones.
    const uint8_t* record(const std::string& name, uint64_t* size, bool verify_crc) const {
        auto it = entries_.find(name);
        if (it == entries_.end()) fail(fmt::format("the archive has no record '{}'", name));
        const ZipEntry& e = it->second;
        if ((e.flags & 1) != 0) fail(fmt::format("record '{}' is encrypted", name));
        if (e.method != 0) {
            fail(
                fmt::format("record '{}' is compressed (zip method {}{}); torch.save stores "
                            "records uncompressed, so the file was probably re-zipped. "
                            "Re-save it with torch.save",
                            name, e.method, e.method == 8 ? ", deflate" : ""));
        }
        if (e.compressed_size != e.size) {
            fail(fmt::format("stored record '{}' has compressed size {} but size {}", name,
                             e.compressed_size, e.size));
        }
        const uint8_t* data = map_->begin() + e.data_offset;
        if (verify_crc && crc32(data, e.size) != e.crc) {
            fail(fmt::format("record '{}' fails its CRC-32 check (file corrupt)", name));
        }
        *size = e.size;
        return data;
    }

  private:
    void need(uint64_t offset, uint64_t bytes, const char* what) const {
        if (offset > map_->size() || bytes > map_->size() - offset) {
            fail(
                fmt::format("{} at byte {} (+{}) lies beyond the end of the {}-byte file "
                            "(file truncated?)",
                            what, offset, bytes, map_->size()));
        }
    }
    uint64_t le(uint64_t offset, int n) const { return read_le(map_->begin() + offset, n); }

    void parse() {
        const uint64_t file_bytes = map_->size();
        if (file_bytes >= 2 && map_->begin()[0] == 0x80 && map_->begin()[1] <= 5) {
            fail(
                "this is the legacy torch.save format (torch < 1.6, or "
                "_use_new_zipfile_serialization=False), which qvg does not read; re-save it "
                "with a current torch.save");
        }
        if (file_bytes < kEndBytes) {
            fail(fmt::format("file has {} bytes, fewer than a zip end record", file_bytes));
        }
        // The end record sits at the very end unless the archive has a comment.
        uint64_t end = UINT64_MAX;
        const uint64_t lowest = file_bytes > kEndBytes + kMaxCommentBytes
                                    ? file_bytes - kEndBytes - kMaxCommentBytes
                                    : 0;
        for (uint64_t pos = file_bytes - kEndBytes + 1; pos-- > lowest;) {
            if (le(pos, 4) == kEndSig && pos + kEndBytes + le(pos + 20, 2) == file_bytes) {
                end = pos;
                break;
            }
        }
        if (end == UINT64_MAX) {
            fail("no zip end-of-central-directory record (file truncated, or not a zip)");
        }
        uint64_t disk = le(end + 4, 2);
        uint64_t cd_disk = le(end + 6, 2);
        uint64_t count = le(end + 10, 2);
        uint64_t cd_size = le(end + 12, 4);
        uint64_t cd_offset = le(end + 16, 4);
        uint64_t cd_limit = end;  // the central directory must end before this
        const bool zip64 = count == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff;
        if (end >= 20 && le(end - 20, 4) == kZip64LocatorSig) {
            const uint64_t record = le(end - 20 + 8, 8);
            need(record, 56, "ZIP64 end-of-central-directory record");
            if (le(record, 4) != kZip64EndSig || record > end - 20) {
                fail(
                    fmt::format("ZIP64 locator points at byte {}, which holds no ZIP64 end "
                                "record",
                                record));
            }
            disk = le(record + 16, 4);
            cd_disk = le(record + 20, 4);
            count = le(record + 32, 8);
            cd_size = le(record + 40, 8);
            cd_offset = le(record + 48, 8);
            cd_limit = record;
        } else if (zip64) {
            fail("end record has ZIP64 markers but no ZIP64 locator precedes it");
        }
        if (disk != 0 || cd_disk != 0) fail("multi-disk (split) zip archives are not supported");
        if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) {
            fail(
                fmt::format("central directory [{}, +{}) overlaps the end record at {} (file "
                            "truncated or corrupt)",
                            cd_offset, cd_size, cd_limit));
        }
        if (count > cd_size / 46) {
            fail(fmt::format("{} entries cannot fit a {}-byte central directory", count, cd_size));
        }
        uint64_t pos = cd_offset;
        for (uint64_t i = 0; i < count; ++i) {
            need(pos, 46, "central directory entry");
            if (pos + 46 > cd_offset + cd_size || le(pos, 4) != kCentralHeaderSig) {
                fail(fmt::format("central directory entry {} of {} at byte {} is corrupt", i, count,
                                 pos));
            }
            ZipEntry e;
            e.flags = static_cast<uint16_t>(le(pos + 8, 2));
            e.method = static_cast<uint16_t>(le(pos + 10, 2));
            e.crc = static_cast<uint32_t>(le(pos + 16, 4));
            e.compressed_size = le(pos + 20, 4);
            e.size = le(pos + 24, 4);
            const uint64_t name_len = le(pos + 28, 2);
            const uint64_t extra_len = le(pos + 30, 2);
            const uint64_t comment_len = le(pos + 32, 2);
            uint64_t disk_start = le(pos + 34, 2);
            uint64_t local = le(pos + 42, 4);
            const uint64_t entry_bytes = 46 + name_len + extra_len + comment_len;
            if (entry_bytes > cd_offset + cd_size - pos) {
                fail(fmt::format("central directory entry {} runs past the directory's end", i));
            }
            std::string name(reinterpret_cast<const char*>(map_->begin() + pos + 46), name_len);
            read_zip64_extra(pos + 46 + name_len, extra_len, name, &e.size, &e.compressed_size,
                             &local, &disk_start);
            if (disk_start != 0) fail(fmt::format("record '{}' lives on another disk", name));
            e.data_offset = local_data_offset(local, name);
            if (e.data_offset > cd_offset || e.compressed_size > cd_offset - e.data_offset) {
                fail(
                    fmt::format("record '{}' ([{}, +{})) runs into the central directory at {} "
                                "(file truncated or corrupt)",
                                name, e.data_offset, e.compressed_size, cd_offset));
            }
            if (!entries_.emplace(name, e).second) {
                fail(fmt::format("record '{}' appears twice", name));
            }
            pos += entry_bytes;
        }
    }

    // ZIP64 extended information (header id 1) holds, in this order, only the fields whose
    // 32-bit (16-bit for the disk) slot is saturated.
    void read_zip64_extra(uint64_t pos, uint64_t len, const std::string& name, uint64_t* size,
                          uint64_t* compressed, uint64_t* local, uint64_t* disk) const {
        const uint64_t end = pos + len;
        while (pos + 4 <= end) {
            const uint64_t id = le(pos, 2);
            const uint64_t block = le(pos + 2, 2);
            if (block > end - pos - 4) {
                fail(fmt::format("record '{}' has a malformed extra field", name));
            }
            if (id == 1) {
                uint64_t p = pos + 4;
                const uint64_t block_end = p + block;
                auto take = [&](uint64_t* field, uint64_t saturated, int bytes) {
                    if (*field != saturated) return;
                    if (p + static_cast<uint64_t>(bytes) > block_end) {
                        fail(fmt::format("record '{}': ZIP64 extra field is too short", name));
                    }
                    *field = le(p, bytes);
                    p += static_cast<uint64_t>(bytes);
                };
                take(size, 0xffffffff, 8);
                take(compressed, 0xffffffff, 8);
                take(local, 0xffffffff, 8);
                take(disk, 0xffff, 4);
            }
            pos += 4 + block;
        }
    }

    uint64_t local_data_offset(uint64_t local, const std::string& name) const {
        need(local, 30, "local file header");
        if (le(local, 4) != kLocalHeaderSig) {
            fail(fmt::format("record '{}': no local file header at byte {}", name, local));
        }
        const uint64_t name_len = le(local + 26, 2);
        const uint64_t extra_len = le(local + 28, 2);
        need(local + 30, name_len + extra_len, "local file header name");
        if (name_len != name.size() ||
            std::memcmp(map_->begin() + local + 30, name.data(), name.size()) != 0) {
            fail(fmt::format("record '{}': local header names a different file", name));
        }
        return local + 30 + name_len + extra_len;
    }

    std::filesystem::path path_;
    std::shared_ptr<const Mapping> map_;
    std::map<std::string, ZipEntry> entries_;
};

std::shared_ptr<const Mapping> map_file(const std::filesystem::path& path) {
    auto map = MappedFile::open(path);
    if (map->size() == 0) {
        throw FormatError(
            fmt::format("{}: not a valid torch checkpoint: the file is empty", path.string()));
    }
    return map;
}

// ---------------------------------------------------------------------------------------------
// Restricted unpickler

enum class GlobalKind {
    kOrderedDict,
    kRebuildTensorV2,
    kRebuildTensor,
    kRebuildParameter,
    kStorageType,
    kDtype
};

struct AllowedGlobal {
    const char* module;
    const char* name;
    GlobalKind kind;
    at::ScalarType type;
};

constexpr auto kNoType = at::ScalarType::Undefined;

constexpr AllowedGlobal kAllowedGlobals[] = {
    {"collections", "OrderedDict", GlobalKind::kOrderedDict, kNoType},
    {"torch._utils", "_rebuild_tensor_v2", GlobalKind::kRebuildTensorV2, kNoType},
    {"torch._utils", "_rebuild_tensor", GlobalKind::kRebuildTensor, kNoType},
    {"torch._utils", "_rebuild_parameter", GlobalKind::kRebuildParameter, kNoType},
    {"torch", "DoubleStorage", GlobalKind::kStorageType, at::kDouble},
    {"torch", "FloatStorage", GlobalKind::kStorageType, at::kFloat},
    {"torch", "HalfStorage", GlobalKind::kStorageType, at::kHalf},
    {"torch", "BFloat16Storage", GlobalKind::kStorageType, at::kBFloat16},
    {"torch", "LongStorage", GlobalKind::kStorageType, at::kLong},
    {"torch", "IntStorage", GlobalKind::kStorageType, at::kInt},
    {"torch", "ShortStorage", GlobalKind::kStorageType, at::kShort},
    {"torch", "CharStorage", GlobalKind::kStorageType, at::kChar},
    {"torch", "ByteStorage", GlobalKind::kStorageType, at::kByte},
    {"torch", "BoolStorage", GlobalKind::kStorageType, at::kBool},
    {"torch", "ComplexFloatStorage", GlobalKind::kStorageType, at::kComplexFloat},
    {"torch", "ComplexDoubleStorage", GlobalKind::kStorageType, at::kComplexDouble},
    {"torch", "Float8_e4m3fnStorage", GlobalKind::kStorageType, at::kFloat8_e4m3fn},
    {"torch", "Float8_e5m2Storage", GlobalKind::kStorageType, at::kFloat8_e5m2},
    {"torch", "float64", GlobalKind::kDtype, at::kDouble},
    {"torch", "float32", GlobalKind::kDtype, at::kFloat},
    {"torch", "float16", GlobalKind::kDtype, at::kHalf},
    {"torch", "bfloat16", GlobalKind::kDtype, at::kBFloat16},
    {"torch", "int64", GlobalKind::kDtype, at::kLong},
    {"torch", "int32", GlobalKind::kDtype, at::kInt},
    {"torch", "int16", GlobalKind::kDtype, at::kShort},
    {"torch", "int8", GlobalKind::kDtype, at::kChar},
    {"torch", "uint8", GlobalKind::kDtype, at::kByte},
    {"torch", "bool", GlobalKind::kDtype, at::kBool},
    {"torch", "complex64", GlobalKind::kDtype, at::kComplexFloat},
    {"torch", "complex128", GlobalKind::kDtype, at::kComplexDouble},
    {"torch", "float8_e4m3fn", GlobalKind::kDtype, at::kFloat8_e4m3fn},
    {"torch", "float8_e5m2", GlobalKind::kDtype, at::kFloat8_e5m2},
};

// Python containers nest; a real state dict is a few levels deep. The limit keeps hostile nesting
// from exhausting the stack while converting.
constexpr int kMaxNesting = 256;

struct Node {
    using Type = CheckpointValue::Kind;
    // Globals and storages exist only while unpickling; they never become values.
    enum class Role { kValue, kGlobal, kStorage };
    Type type = Type::kNone;
    Role role = Role::kValue;
    int64_t i = 0;
    double f = 0.0;
    std::string s;  // string, bytes, or the global's dotted name
    at::ScalarType dtype = kNoType;
    GlobalKind global = GlobalKind::kOrderedDict;
    at::Tensor tensor;  // tensor, or the 1-D storage
    std::string storage_key;
    std::vector<Node*> items;  // list / tuple elements, dict values
    std::vector<std::string> keys;
    std::unordered_map<std::string, size_t> key_index;
};

const char* node_type_name(const Node* node) {
    switch (node->role) {
        case Node::Role::kGlobal:
            return "global";
        case Node::Role::kStorage:
            return "storage";
        case Node::Role::kValue:
            break;
    }
    return checkpoint_kind_name(node->type);
}

class Checkpoint {
  public:
    explicit Checkpoint(const std::filesystem::path& path)
        : path_(path), map_(map_file(path)), zip_(path, map_) {}

    CheckpointValue load() {
        find_archive();
        uint64_t size = 0;
        const uint8_t* pickle = zip_.record(prefix_ + "data.pkl", &size, true);
        Node* root = unpickle(pickle, size);
        std::unordered_map<const Node*, CheckpointValue> done;
        std::set<const Node*> in_progress;
        return convert(root, 0, done, in_progress);
    }

  private:
    [[noreturn]] void fail(const std::string& what) const { zip_.fail(what); }

    void find_archive() {
        std::vector<std::string> pickles;
        for (const auto& [name, entry] : zip_.entries()) {
            const auto slash = name.find('/');
            if (slash != std::string::npos &&
                name.compare(slash, std::string::npos, "/data.pkl") == 0) {
                pickles.push_back(name);
            }
        }
        if (pickles.empty()) {
            std::vector<std::string> names;
            for (const auto& [name, entry] : zip_.entries()) {
                if (names.size() == 8) {
                    names.push_back("...");
                    break;
                }
                names.push_back(name);
            }
            fail(
                fmt::format("the zip has no <archive>/data.pkl record, so it was not written by "
                            "torch.save (records: {})",
                            fmt::join(names, ", ")));
        }
        if (pickles.size() > 1) {
            fail(fmt::format("the zip holds several pickles ({})", fmt::join(pickles, ", ")));
        }
        prefix_ = pickles[0].substr(0, pickles[0].size() - std::strlen("data.pkl"));
        if (zip_.contains(prefix_ + "constants.pkl")) {
            fail(
                "this is a TorchScript archive (torch.jit.save); qvg reads torch.save "
                "checkpoints of state dicts");
        }
        if (zip_.contains(prefix_ + "byteorder")) {
            uint64_t n = 0;
            const uint8_t* p = zip_.record(prefix_ + "byteorder", &n, true);
            const std::string order(reinterpret_cast<const char*>(p), n);
            if (order != "little") {
                fail(
                    fmt::format("saved with byte order '{}'; only little-endian checkpoints are "
                                "supported",
                                order));
            }
        }
    }

    Node* make(Node::Type type, Node::Role role = Node::Role::kValue) {
        arena_.push_back(std::make_unique<Node>());
        arena_.back()->type = type;
        arena_.back()->role = role;
        return arena_.back().get();
    }

    Node* unpickle(const uint8_t* data, uint64_t size);
    Node* reduce(Node* callable, Node* args);
    Node* persistent_load(Node* pid);
    Node* rebuild_tensor(Node* args, bool v2);
    std::string key_text(const Node* key, int depth) const;
    void set_item(Node* dict, Node* key, Node* value) const;
    CheckpointValue convert(const Node* node, int depth,
                            std::unordered_map<const Node*, CheckpointValue>& done,
                            std::set<const Node*>& in_progress) const;

    std::filesystem::path path_;
    std::shared_ptr<const Mapping> map_;
    ZipArchive zip_;
    std::string prefix_;  // "archive/"
    std::vector<std::unique_ptr<Node>> arena_;
    std::map<std::string, Node*> storages_;
};

std::string Checkpoint::key_text(const Node* key, int depth) const {
    if (depth > kMaxNesting) fail("dict key nested too deeply");
    if (key->role != Node::Role::kValue) {
        fail(fmt::format("a dict key is a {}", node_type_name(key)));
    }
    switch (key->type) {
        case Node::Type::kString:
            return key->s;
        case Node::Type::kInt:
            return std::to_string(key->i);
        case Node::Type::kBool:
            return key->i != 0 ? "True" : "False";
        case Node::Type::kNone:
            return "None";
        case Node::Type::kFloat:
            return fmt::format("{}", key->f);
        case Node::Type::kTuple: {
            std::vector<std::string> parts;
            for (const Node* item : key->items) parts.push_back(key_text(item, depth + 1));
            return fmt::format("({})", fmt::join(parts, ", "));
        }
        default:
            fail(
                fmt::format("a dict key is a {}; only str, int, float, bool, None and tuples of "
                            "them are supported",
                            node_type_name(key)));
    }
}

void Checkpoint::set_item(Node* dict, Node* key, Node* value) const {
    if (dict->type != Node::Type::kDict) {
        fail(fmt::format("pickle sets an item on a {}, not a dict", node_type_name(dict)));
    }
    std::string text = key_text(key, 0);
    auto [it, inserted] = dict->key_index.emplace(text, dict->items.size());
    if (inserted) {
        dict->keys.push_back(std::move(text));
        dict->items.push_back(value);
    } else {
        dict->items[it->second] = value;  // Python semantics: the later value wins
    }
}

Node* Checkpoint::unpickle(const uint8_t* data, uint64_t size) {
    std::vector<Node*> stack;
    std::vector<size_t> marks;
    std::unordered_map<uint64_t, Node*> memo;
    uint64_t pos = 0;
    uint64_t op_pos = 0;
    auto bad = [&](const std::string& what) {
        fail(fmt::format("data.pkl byte {}: {}", op_pos, what));
    };
    auto take = [&](uint64_t n) {
        if (n > size - pos) bad(fmt::format("needs {} bytes but the pickle ends (truncated)", n));
        const uint8_t* p = data + pos;
        pos += n;
        return p;
    };
    auto arg = [&](int n) { return read_le(take(static_cast<uint64_t>(n)), n); };
    auto pop = [&]() {
        if (stack.empty() || (!marks.empty() && stack.size() <= marks.back())) {
            bad("pops from an empty stack");
        }
        Node* n = stack.back();
        stack.pop_back();
        return n;
    };
    auto top = [&]() {
        if (stack.empty()) bad("reads an empty stack");
        return stack.back();
    };
    auto pop_mark = [&]() {
        if (marks.empty()) bad("no MARK to pop to");
        std::vector<Node*> items(stack.begin() + static_cast<std::ptrdiff_t>(marks.back()),
                                 stack.end());
        stack.resize(marks.back());
        marks.pop_back();
        return items;
    };
    auto push_string = [&](Node::Type type, uint64_t n) {
        Node* node = make(type);
        const uint8_t* p = take(n);
        node->s.assign(reinterpret_cast<const char*>(p), n);
        stack.push_back(node);
    };
    auto push_int = [&](int64_t v) {
        Node* node = make(Node::Type::kInt);
        node->i = v;
        stack.push_back(node);
    };
    auto push_long = [&](uint64_t n) {
        if (n > 8) bad(fmt::format("integer of {} bytes does not fit 64 bits", n));
        uint64_t v = n == 0 ? 0 : read_le(take(n), static_cast<int>(n));
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) != 0) v |= ~0ull << (8 * n);  // sign-extend
        push_int(static_cast<int64_t>(v));
    };
    auto push_tuple = [&](std::vector<Node*> items) {
        Node* node = make(Node::Type::kTuple);
        node->items = std::move(items);
        stack.push_back(node);
    };
    auto append = [&](Node* list, const std::vector<Node*>& items) {
        if (list->type != Node::Type::kList) {
            bad(fmt::format("appends to a {}, not a list", node_type_name(list)));
        }
        list->items.insert(list->items.end(), items.begin(), items.end());
    };
    auto push_global = [&](const std::string& module, const std::string& name) {
        for (const auto& g : kAllowedGlobals) {
            if (module == g.module && name == g.name) {
                Node* node = g.kind == GlobalKind::kDtype
                                 ? make(Node::Type::kDtype)
                                 : make(Node::Type::kNone, Node::Role::kGlobal);
                node->global = g.kind;
                node->dtype = g.type;
                node->s = module + "." + name;
                stack.push_back(node);
                return;
            }
        }
        fail(
            fmt::format("the pickle references the Python global '{}.{}', which qvg refuses to "
                        "load: a checkpoint may only hold tensors, storages, dtypes, plain values "
                        "and (Ordered)dicts. The file may be hostile or hold arbitrary objects",
                        module, name));
    };
    auto memo_put = [&](uint64_t index) { memo[index] = top(); };
    auto memo_get = [&](uint64_t index) {
        auto it = memo.find(index);
        if (it == memo.end()) bad(fmt::format("memo entry {} was never stored", index));
        stack.push_back(it->second);
    };

    while (true) {
        op_pos = pos;
        const uint8_t op = *take(1);
        switch (op) {
            case 0x80:  // PROTO
                if (arg(1) > 5) bad("unknown pickle protocol");
                break;
            case 0x95:  // FRAME: a length hint only
                take(8);
                break;
            case '.': {  // STOP
                Node* result = pop();
                if (!stack.empty() || !marks.empty()) bad("STOP leaves values on the stack");
                return result;
            }
            case '(':
                marks.push_back(stack.size());
                break;  // MARK
            case '0':
                pop();
                break;  // POP
            case '1':
                pop_mark();
                break;  // POP_MARK
            case '2':
                stack.push_back(top());
                break;  // DUP
            case 'N':
                stack.push_back(make(Node::Type::kNone));
                break;
            case 0x88:    // NEWTRUE
            case 0x89: {  // NEWFALSE
                Node* node = make(Node::Type::kBool);
                node->i = op == 0x88 ? 1 : 0;
                stack.push_back(node);
                break;
            }
            case 'J':
                push_int(static_cast<int32_t>(arg(4)));
                break;  // BININT
            case 'K':
                push_int(static_cast<int64_t>(arg(1)));
                break;  // BININT1
            case 'M':
                push_int(static_cast<int64_t>(arg(2)));
                break;  // BININT2
            case 0x8a:
                push_long(arg(1));
                break;  // LONG1
            case 0x8b:
                push_long(arg(4));
                break;   // LONG4
            case 'G': {  // BINFLOAT: big-endian IEEE double
                const uint8_t* p = take(8);
                uint64_t bits = 0;
                for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
                Node* node = make(Node::Type::kFloat);
                std::memcpy(&node->f, &bits, sizeof(double));
                stack.push_back(node);
                break;
            }
            case 'X':
                push_string(Node::Type::kString, arg(4));
                break;  // BINUNICODE
            case 0x8c:
                push_string(Node::Type::kString, arg(1));
                break;  // SHORT_BINUNICODE
            case 0x8d:
                push_string(Node::Type::kString, arg(8));
                break;  // BINUNICODE8
            case 'B':
                push_string(Node::Type::kBytes, arg(4));
                break;  // BINBYTES
            case 'C':
                push_string(Node::Type::kBytes, arg(1));
                break;  // SHORT_BINBYTES
            case 0x8e:
                push_string(Node::Type::kBytes, arg(8));
                break;  // BINBYTES8
            case '}':
                stack.push_back(make(Node::Type::kDict));
                break;  // EMPTY_DICT
            case ']':
                stack.push_back(make(Node::Type::kList));
                break;  // EMPTY_LIST
            case ')':
                push_tuple({});
                break;  // EMPTY_TUPLE
            case 't':
                push_tuple(pop_mark());
                break;    // TUPLE
            case 0x85:    // TUPLE1
            case 0x86:    // TUPLE2
            case 0x87: {  // TUPLE3
                std::vector<Node*> items(static_cast<size_t>(op - 0x84));
                for (size_t k = items.size(); k-- > 0;) items[k] = pop();
                push_tuple(std::move(items));
                break;
            }
            case 'l': {  // LIST
                Node* node = make(Node::Type::kList);
                node->items = pop_mark();
                stack.push_back(node);
                break;
            }
            case 'd': {  // DICT
                const std::vector<Node*> items = pop_mark();
                if (items.size() % 2 != 0) bad("DICT with an odd number of items");
                Node* node = make(Node::Type::kDict);
                for (size_t k = 0; k < items.size(); k += 2) set_item(node, items[k], items[k + 1]);
                stack.push_back(node);
                break;
            }
            case 'a': {  // APPEND
                Node* value = pop();
                append(top(), {value});
                break;
            }
            case 'e': {  // APPENDS
                const std::vector<Node*> items = pop_mark();
                append(top(), items);
                break;
            }
            case 's': {  // SETITEM
                Node* value = pop();
                Node* key = pop();
                set_item(top(), key, value);
                break;
            }
            case 'u': {  // SETITEMS
                const std::vector<Node*> items = pop_mark();
                if (items.size() % 2 != 0) bad("SETITEMS with an odd number of items");
                Node* dict = top();
                for (size_t k = 0; k < items.size(); k += 2) set_item(dict, items[k], items[k + 1]);
                break;
            }
            case 'q':
                memo_put(arg(1));
                break;  // BINPUT
            case 'r':
                memo_put(arg(4));
                break;  // LONG_BINPUT
            case 0x94:
                memo_put(memo.size());
                break;  // MEMOIZE
            case 'h':
                memo_get(arg(1));
                break;  // BINGET
            case 'j':
                memo_get(arg(4));
                break;   // LONG_BINGET
            case 'c': {  // GLOBAL "module\nname\n"
                auto line = [&]() {
                    const uint8_t* start = data + pos;
                    const void* nl = std::memchr(start, '\n', size - pos);
                    if (nl == nullptr) bad("GLOBAL name is not terminated");
                    const auto n = static_cast<uint64_t>(static_cast<const uint8_t*>(nl) - start);
                    take(n + 1);
                    return std::string(reinterpret_cast<const char*>(start), n);
                };
                const std::string module = line();
                const std::string name = line();
                push_global(module, name);
                break;
            }
            case 0x93: {  // STACK_GLOBAL
                Node* name = pop();
                Node* module = pop();
                if (name->type != Node::Type::kString || module->type != Node::Type::kString) {
                    bad("STACK_GLOBAL needs two strings");
                }
                push_global(module->s, name->s);
                break;
            }
            case 'R': {  // REDUCE
                Node* args = pop();
                Node* callable = pop();
                stack.push_back(reduce(callable, args));
                break;
            }
            case 'b': {  // BUILD
                Node* state = pop();
                Node* object = top();
                // OrderedDict state dicts carry their _metadata attribute this way; qvg does not
                // need it. Setting state on anything else is not something a checkpoint does.
                if (object->type != Node::Type::kDict || state->role != Node::Role::kValue ||
                    (state->type != Node::Type::kDict && state->type != Node::Type::kNone)) {
                    bad(
                        fmt::format("BUILD sets a {} as the state of a {}; only dict attributes "
                                    "of a dict are supported",
                                    node_type_name(state), node_type_name(object)));
                }
                break;
            }
            case 'Q': {  // BINPERSID
                Node* pid = pop();
                stack.push_back(persistent_load(pid));
                break;
            }
            default:
                bad(fmt::format("unsupported pickle opcode 0x{:02x}{}", op,
                                op >= 0x20 && op < 0x7f ? fmt::format(" ('{}')", char(op)) : ""));
        }
    }
}

Node* Checkpoint::reduce(Node* callable, Node* args) {
    if (callable->role != Node::Role::kGlobal) {
        fail(fmt::format("data.pkl calls a {}, which is not a function", node_type_name(callable)));
    }
    if (args->type != Node::Type::kTuple) {
        fail(fmt::format("data.pkl calls {} with a {} instead of an argument tuple", callable->s,
                         node_type_name(args)));
    }
    switch (callable->global) {
        case GlobalKind::kOrderedDict: {
            Node* dict = make(Node::Type::kDict);
            if (args->items.empty()) return dict;
            const Node* pairs = args->items[0];
            if (args->items.size() != 1 || pairs->type != Node::Type::kList) {
                fail("collections.OrderedDict takes no arguments or one list of pairs");
            }
            for (const Node* pair : pairs->items) {
                if (pair->type != Node::Type::kTuple || pair->items.size() != 2) {
                    fail("collections.OrderedDict: an item is not a (key, value) pair");
                }
                set_item(dict, pair->items[0], pair->items[1]);
            }
            return dict;
        }
        case GlobalKind::kRebuildTensorV2:
            return rebuild_tensor(args, true);
        case GlobalKind::kRebuildTensor:
            return rebuild_tensor(args, false);
        case GlobalKind::kRebuildParameter: {
            if (args->items.size() < 2 || args->items[0]->type != Node::Type::kTensor) {
                fail("torch._utils._rebuild_parameter expects (tensor, requires_grad, hooks)");
            }
            return args->items[0];
        }
        case GlobalKind::kStorageType:
        case GlobalKind::kDtype:
            break;
    }
    fail(fmt::format("data.pkl calls {}, which qvg does not construct", callable->s));
}

Node* Checkpoint::persistent_load(Node* pid) {
    const auto& it = pid->items;
    if (pid->type != Node::Type::kTuple || it.size() != 5 || it[0]->type != Node::Type::kString ||
        it[0]->s != "storage") {
        fail("a persistent id is not ('storage', type, key, location, numel)");
    }
    const Node* type = it[1];
    const Node* key = it[2];
    const Node* numel = it[4];
    if (type->role != Node::Role::kGlobal || type->global != GlobalKind::kStorageType) {
        fail(fmt::format("persistent id names storage type {}, not a torch.*Storage",
                         type->role == Node::Role::kGlobal ? type->s : node_type_name(type)));
    }
    if (key->type != Node::Type::kString || numel->type != Node::Type::kInt || numel->i < 0) {
        fail("a persistent id's key is not a string or its element count not a count");
    }
    auto cached = storages_.find(key->s);
    if (cached != storages_.end()) {
        if (cached->second->dtype != type->dtype || cached->second->i != numel->i) {
            fail(fmt::format("storage '{}' is used both as {} x {} and {} x {}", key->s,
                             cached->second->i, c10::toString(cached->second->dtype), numel->i,
                             c10::toString(type->dtype)));
        }
        return cached->second;
    }
    const std::string name = prefix_ + "data/" + key->s;
    if (!zip_.contains(name)) {
        fail(fmt::format("storage '{}' has no record '{}' in the archive (file incomplete?)",
                         key->s, name));
    }
    uint64_t size = 0;
    const uint8_t* bytes = zip_.record(name, &size, false);
    const size_t elem = c10::elementSize(type->dtype);
    uint64_t expect = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel->i), elem, &expect) || size != expect) {
        fail(
            fmt::format("storage '{}' ({} x {}) needs {} bytes but its record has {} (file "
                        "truncated or corrupt?)",
                        key->s, numel->i, c10::toString(type->dtype), expect, size));
    }
    const auto options = at::TensorOptions().dtype(type->dtype).device(at::kCPU);
    Node* node = make(Node::Type::kNone, Node::Role::kStorage);
    node->dtype = type->dtype;
    node->i = numel->i;
    node->storage_key = key->s;
    auto* ptr = const_cast<uint8_t*>(bytes);
    if (numel->i == 0) {
        node->tensor = at::empty({0}, options);
    } else if (reinterpret_cast<uintptr_t>(ptr) % elem != 0) {
        node->tensor = at::empty({numel->i}, options);
        std::memcpy(node->tensor.data_ptr(), ptr, size);
    } else {
        auto keep = map_;
        node->tensor = at::from_blob(
            ptr, {numel->i}, [keep](void*) {}, options);
    }
    storages_[key->s] = node;
    return node;
}

Node* Checkpoint::rebuild_tensor(Node* args, bool v2) {
    const char* fn = v2 ? "_rebuild_tensor_v2" : "_rebuild_tensor";
    const auto& a = args->items;
    const bool arity_ok = v2 ? (a.size() == 6 || a.size() == 7) : a.size() == 4;
    if (!arity_ok || a[0]->role != Node::Role::kStorage || a[1]->type != Node::Type::kInt ||
        a[2]->type != Node::Type::kTuple || a[3]->type != Node::Type::kTuple) {
        fail(fmt::format("torch._utils.{} expects (storage, offset, size, stride{})", fn,
                         v2 ? ", requires_grad, hooks" : ""));
    }
    const Node* storage = a[0];
    auto ints = [&](const Node* tuple, const char* what) {
        std::vector<int64_t> out;
        for (const Node* n : tuple->items) {
            if (n->type != Node::Type::kInt || n->i < 0) {
                fail(fmt::format("a tensor's {} holds a {} instead of a non-negative int", what,
                                 node_type_name(n)));
            }
            out.push_back(n->i);
        }
        return out;
    };
    const int64_t offset = a[1]->i;
    const std::vector<int64_t> sizes = ints(a[2], "size");
    const std::vector<int64_t> strides = ints(a[3], "stride");
    if (sizes.size() != strides.size() || offset < 0) {
        fail(fmt::format("a tensor has size ({}) but stride ({}) and offset {}",
                         fmt::join(sizes, ", "), fmt::join(strides, ", "), offset));
    }
    Node* node = make(Node::Type::kTensor);
    int64_t last = offset;  // the highest element index the view touches
    bool empty = false;
    for (size_t d = 0; d < sizes.size(); ++d) {
        if (sizes[d] == 0) empty = true;
        int64_t span = 0;
        if (sizes[d] > 0 && (__builtin_mul_overflow(sizes[d] - 1, strides[d], &span) ||
                             __builtin_add_overflow(last, span, &last))) {
            last = INT64_MAX;
        }
    }
    if (empty) {
        node->tensor = at::empty(sizes, storage->tensor.options());
        return node;
    }
    if (last >= storage->i) {
        fail(
            fmt::format("a tensor of size ({}), stride ({}) at offset {} reaches element {} of "
                        "storage '{}', which has {}",
                        fmt::join(sizes, ", "), fmt::join(strides, ", "), offset, last,
                        storage->storage_key, storage->i));
    }
    node->tensor = storage->tensor.as_strided(sizes, strides, offset);
    return node;
}

CheckpointValue Checkpoint::convert(const Node* node, int depth,
                                    std::unordered_map<const Node*, CheckpointValue>& done,
                                    std::set<const Node*>& in_progress) const {
    if (depth > kMaxNesting) {
        fail(fmt::format("the pickled object nests more than {} levels deep", kMaxNesting));
    }
    auto found = done.find(node);
    if (found != done.end()) return found->second;
    if (!in_progress.insert(node).second) fail("the pickled object contains itself (a cycle)");
    auto children = [&]() {
        std::vector<CheckpointValue> out;
        out.reserve(node->items.size());
        for (const Node* n : node->items) out.push_back(convert(n, depth + 1, done, in_progress));
        return out;
    };
    if (node->role != Node::Role::kValue) {
        fail(fmt::format("the checkpoint holds a bare {} ({}), not a value", node_type_name(node),
                         node->role == Node::Role::kGlobal ? node->s : node->storage_key));
    }
    CheckpointValue v;
    switch (node->type) {
        case Node::Type::kNone:
            break;
        case Node::Type::kBool:
            v = CheckpointValue::boolean(node->i != 0);
            break;
        case Node::Type::kInt:
            v = CheckpointValue::integer(node->i);
            break;
        case Node::Type::kFloat:
            v = CheckpointValue::floating(node->f);
            break;
        case Node::Type::kString:
            v = CheckpointValue::string(node->s);
            break;
        case Node::Type::kBytes:
            v = CheckpointValue::bytes(node->s);
            break;
        case Node::Type::kDtype:
            v = CheckpointValue::dtype(node->dtype);
            break;
        case Node::Type::kTensor:
            v = CheckpointValue::tensor(node->tensor);
            break;
        case Node::Type::kList:
            v = CheckpointValue::list(children());
            break;
        case Node::Type::kTuple:
            v = CheckpointValue::tuple(children());
            break;
        case Node::Type::kDict:
            v = CheckpointValue::dict(node->keys, children());
            break;
    }
    in_progress.erase(node);
    done.emplace(node, v);
    return v;
}

void flatten_into(const CheckpointValue& value, const std::string& name,
                  std::map<std::string, at::Tensor>& out) {
    switch (value.kind()) {
        case CheckpointValue::Kind::kTensor:
            if (!out.emplace(name, value.as_tensor()).second) {
                throw FormatError(
                    fmt::format("checkpoint: two tensors flatten to the name '{}'", name));
            }
            break;
        case CheckpointValue::Kind::kDict:
        case CheckpointValue::Kind::kList:
        case CheckpointValue::Kind::kTuple: {
            const bool dict = value.is_dict();
            for (size_t i = 0; i < value.size(); ++i) {
                const std::string key = dict ? value.keys()[i] : std::to_string(i);
                flatten_into(value.items()[i], name.empty() ? key : name + "." + key, out);
            }
            break;
        }
        default:
            break;
    }
}

}  // namespace

CheckpointValue load_torch_checkpoint(const std::filesystem::path& path) {
    return Checkpoint(path).load();
}

std::map<std::string, at::Tensor> flatten_tensors(const CheckpointValue& root,
                                                  const std::string& prefix) {
    std::map<std::string, at::Tensor> out;
    flatten_into(root, prefix, out);
    return out;
}

}  // namespace qvg::core
