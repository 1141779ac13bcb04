#pragma once
// torch.save checkpoints (.pt / .pth, the zip format torch writes since 1.6), read without Python.
//
// The file is a stored (uncompressed) zip: <archive>/data.pkl holds a pickle of the saved object
// and <archive>/data/<key> the raw little-endian bytes of each storage. The zip is memory-mapped,
// so tensors view the file's bytes without copying when a record is aligned for its dtype (torch
// aligns records to 64 bytes). The pickle is read by a restricted unpickler that knows only the
// handful of globals a state dict needs (OrderedDict, tensor rebuild functions, storage types,
// dtypes); any other global, e.g. os.system or builtins.eval, is rejected with a FormatError naming
// it, so a hostile file can never run code.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qvg::core {

// One node of the object a checkpoint holds: Python scalars, strings, tensors, dtypes and the
// containers around them. Copies are cheap (containers share their children).
class CheckpointValue {
  public:
    enum class Kind {
        kNone,
        kBool,
        kInt,
        kFloat,
        kString,
        kBytes,
        kDtype,
        kTensor,
        kList,
        kTuple,
        kDict
    };

    CheckpointValue() = default;  // None
    static CheckpointValue none() { return {}; }
    static CheckpointValue boolean(bool value);
    static CheckpointValue integer(int64_t value);
    static CheckpointValue floating(double value);
    static CheckpointValue string(std::string value);
    static CheckpointValue bytes(std::string value);
    static CheckpointValue dtype(at::ScalarType value);
    static CheckpointValue tensor(at::Tensor value);
    static CheckpointValue list(std::vector<CheckpointValue> items);
    static CheckpointValue tuple(std::vector<CheckpointValue> items);
    // Keys keep their insertion order; non-string Python keys arrive as their text (1 -> "1").
    static CheckpointValue dict(std::vector<std::string> keys, std::vector<CheckpointValue> values);

    Kind kind() const { return kind_; }
    bool is_dict() const { return kind_ == Kind::kDict; }
    bool is_tensor() const { return kind_ == Kind::kTensor; }
    // Accessors throw Error saying which kind was expected and which was found.
    bool as_bool() const;
    int64_t as_int() const;
    double as_float() const;               // also accepts an int
    const std::string& as_string() const;  // string or bytes
    at::ScalarType as_dtype() const;
    const at::Tensor& as_tensor() const;
    // Elements of a list or tuple, or the values of a dict.
    const std::vector<CheckpointValue>& items() const;
    // Keys of a dict, in order.
    const std::vector<std::string>& keys() const;
    // Dict lookup: nullptr when the key is absent (throws when this is not a dict).
    const CheckpointValue* find(const std::string& key) const;
    // Dict lookup that throws Error listing the available keys.
    const CheckpointValue& at(const std::string& key) const;
    size_t size() const { return children_ ? children_->values.size() : 0; }

  private:
    struct Children {
        std::vector<std::string> keys;  // dicts only
        std::vector<CheckpointValue> values;
    };
    Kind kind_ = Kind::kNone;
    int64_t int_ = 0;
    double float_ = 0.0;
    at::ScalarType dtype_ = at::ScalarType::Undefined;
    std::string string_;
    at::Tensor tensor_;
    std::shared_ptr<const Children> children_;
};

const char* checkpoint_kind_name(CheckpointValue::Kind kind);

// Reads a torch.save zip checkpoint. Tensors are CPU tensors viewing a private copy-on-write
// mapping of the file (writes never reach the file); they keep the mapping alive. Tensors saved
// from one storage share it, as they do in PyTorch. Throws Error when the file cannot be opened and
// FormatError for anything malformed: a non-zip or legacy (pre-1.6) file, compressed or truncated
// records, a pickle that uses an unsupported opcode or global, or a view outside its storage.
CheckpointValue load_torch_checkpoint(const std::filesystem::path& path);

// Every tensor under `root`, keyed by its dotted path ("generator.blocks.0.q.weight"); list and
// tuple elements use their index. Non-tensor leaves (step counters, configs) are skipped. Throws
// FormatError when two paths flatten to the same name.
std::map<std::string, at::Tensor> flatten_tensors(const CheckpointValue& root,
                                                  const std::string& prefix = "");

}  // namespace qvg::core
