#include "qvg/core/weights.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <initializer_list>
#include <set>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/torch_checkpoint.h"

namespace qvg::core {
namespace {

namespace fs = std::filesystem;

constexpr std::array<const char*, 4> kLeadingPrefixes = {"model.", "module.",
                                                         "_fsdp_wrapped_module.", "_orig_mod."};
constexpr std::array<const char*, 3> kWrapperComponents = {
    "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod."};

// How many names of each kind an error lists before "and N more".
constexpr size_t kMaxListed = 10;

// Files that hold safetensors or torch.save data, by the names their writers give them.
bool has_extension(const fs::path& p, std::initializer_list<const char*> extensions) {
    const std::string ext = p.extension().string();
    return std::any_of(extensions.begin(), extensions.end(),
                       [&](const char* e) { return ext == e; });
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// torch.save output: a zip ("PK\3\4"), or a bare pickle (0x80, protocol) from torch < 1.6, which
// the checkpoint reader rejects with a message that says so.
bool is_torch_save(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("cannot open '{}'", path.string()));
    unsigned char magic[4] = {};
    in.read(reinterpret_cast<char*>(magic), sizeof(magic));
    const auto n = in.gcount();
    if (n == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4) return true;
    return n >= 2 && magic[0] == 0x80 && magic[1] <= 5;
}

void insert_unique(TensorMap& out, const std::string& name, at::Tensor tensor,
                   const fs::path& where) {
    if (!out.emplace(name, std::move(tensor)).second) {
        throw FormatError(fmt::format("{}: tensor '{}' appears twice", where.string(), name));
    }
}

TensorMap load_safetensors_file(const fs::path& path) {
    auto file = SafetensorsFile::open(path);
    TensorMap out;
    for (const auto& info : file->tensors()) out.emplace(info.name, file->tensor(info.name));
    return out;
}

// Hugging Face sharding: {"weight_map": {"tensor name": "shard file name", ...}}.
TensorMap load_sharded(const fs::path& index_path) {
    nlohmann::json index;
    try {
        std::ifstream in(index_path);
        if (!in) throw Error(fmt::format("cannot open '{}'", index_path.string()));
        index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(fmt::format("{}: not a valid index: {}", index_path.string(), e.what()));
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        throw FormatError(
            fmt::format("{}: expected an object with a 'weight_map' of tensor name -> shard file",
                        index_path.string()));
    }
    std::map<std::string, std::vector<std::string>> names_by_shard;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        if (!it.value().is_string()) {
            throw FormatError(fmt::format("{}: weight_map['{}'] is not a file name",
                                          index_path.string(), it.key()));
        }
        const std::string shard = it.value().get<std::string>();
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") {
            throw FormatError(
                fmt::format("{}: shard '{}' is not a file name in the index's "
                            "directory",
                            index_path.string(), shard));
        }
        names_by_shard[shard].push_back(it.key());
    }
    if (names_by_shard.empty()) {
        throw FormatError(fmt::format("{}: weight_map is empty", index_path.string()));
    }
    TensorMap out;
    for (const auto& [shard, names] : names_by_shard) {
        const fs::path shard_path = index_path.parent_path() / shard;
        auto file = SafetensorsFile::open(shard_path);
        for (const auto& name : names) {
            if (!file->contains(name)) {
                throw FormatError(
                    fmt::format("{}: the index places '{}' in this shard, which "
                                "does not hold it",
                                shard_path.string(), name));
            }
        }
        for (const auto& info : file->tensors()) {
            insert_unique(out, info.name, file->tensor(info.name), index_path);
        }
    }
    return out;
}

std::string list_some(const std::vector<std::string>& names) {
    if (names.size() <= kMaxListed) return fmt::format("{}", fmt::join(names, ", "));
    return fmt::format("{}, and {} more",
                       fmt::join(names.begin(), names.begin() + kMaxListed, ", "),
                       names.size() - kMaxListed);
}

// The weight file a directory stands for (first match wins), or an index.json for shards.
fs::path resolve_directory(const fs::path& dir) {
    for (const char* name :
         {"diffusion_pytorch_model.safetensors", "model.safetensors",
          "diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json"}) {
        if (fs::is_regular_file(dir / name)) return dir / name;
    }
    std::vector<fs::path> indexes, safetensors, checkpoints;
    std::vector<std::string> seen;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.is_regular_file()) continue;
        const fs::path& p = entry.path();
        const std::string name = p.filename().string();
        seen.push_back(name);
        if (ends_with(name, ".safetensors.index.json")) {
            indexes.push_back(p);
        } else if (has_extension(p, {".safetensors"})) {
            safetensors.push_back(p);
        } else if (has_extension(p, {".pt", ".pth", ".ckpt"})) {
            checkpoints.push_back(p);
        }
    }
    std::sort(seen.begin(), seen.end());
    auto names_of = [](std::vector<fs::path> paths) {
        std::vector<std::string> names;
        for (const auto& p : paths) names.push_back(p.filename().string());
        std::sort(names.begin(), names.end());
        return names;
    };
    for (const auto* group : {&indexes, &safetensors, &checkpoints}) {
        if (group->size() == 1) return group->front();
        if (group->size() > 1) {
            throw FormatError(
                fmt::format("{}: several candidate weight files ({}); pass the one "
                            "to load",
                            dir.string(), list_some(names_of(*group))));
        }
    }
    throw FormatError(fmt::format(
        "{}: no weights found; expected diffusion_pytorch_model.safetensors, model.safetensors, "
        "a *.safetensors.index.json with its shards, or one .pt/.pth file (the directory holds: "
        "{})",
        dir.string(), seen.empty() ? std::string("nothing") : list_some(seen)));
}

bool is_flat_state_dict(const CheckpointValue& value) {
    if (!value.is_dict() || value.size() == 0) return false;
    return std::all_of(value.items().begin(), value.items().end(),
                       [](const CheckpointValue& v) { return v.is_tensor(); });
}

TensorMap load_checkpoint_weights(const fs::path& path, const WeightLoadOptions& options) {
    const CheckpointValue root = load_torch_checkpoint(path);
    if (!root.is_dict()) {
        throw FormatError(fmt::format("{}: the checkpoint holds a {}, not a dict of weights",
                                      path.string(), checkpoint_kind_name(root.kind())));
    }
    const CheckpointValue* chosen = nullptr;
    std::string chosen_name;
    if (!options.checkpoint_key.empty()) {
        chosen = root.find(options.checkpoint_key);
        chosen_name = options.checkpoint_key;
        if (chosen == nullptr) {
            throw FormatError(fmt::format("{}: no top-level entry '{}' (entries: {})",
                                          path.string(), options.checkpoint_key,
                                          list_some(root.keys())));
        }
    } else if ((chosen = root.find("generator_ema")) != nullptr) {
        chosen_name = "generator_ema";
    } else if ((chosen = root.find("generator")) != nullptr) {
        chosen_name = "generator";
    } else if (is_flat_state_dict(root)) {
        chosen = &root;
    } else {
        throw FormatError(fmt::format(
            "{}: found neither 'generator_ema' nor 'generator', and the top level is not a flat "
            "state dict (entries: {}); name the entry to load with checkpoint_key",
            path.string(), list_some(root.keys())));
    }
    if (!chosen->is_dict()) {
        throw FormatError(fmt::format("{}: entry '{}' is a {}, not a state dict", path.string(),
                                      chosen_name, checkpoint_kind_name(chosen->kind())));
    }
    TensorMap out = flatten_tensors(*chosen);
    if (out.empty()) {
        throw FormatError(fmt::format("{}: entry '{}' holds no tensors", path.string(),
                                      chosen_name.empty() ? "(top level)" : chosen_name));
    }
    return out;
}

bool starts_with(const std::string& s, size_t at, const char* prefix) {
    return s.compare(at, std::char_traits<char>::length(prefix), prefix) == 0;
}

std::string shape_text(at::IntArrayRef shape) {
    return fmt::format("[{}]", fmt::join(shape, ", "));
}

void append_listed(std::string& message, const char* label, const std::vector<std::string>& lines) {
    for (size_t i = 0; i < lines.size() && i < kMaxListed; ++i) {
        message += fmt::format("\n  {} {}", label, lines[i]);
    }
    if (lines.size() > kMaxListed) {
        message += fmt::format("\n  ... and {} more {}", lines.size() - kMaxListed, label);
    }
}

}  // namespace

std::string strip_wrapper_prefixes(const std::string& name) {
    std::string out = name;
    bool changed = true;
    while (changed) {
        changed = false;
        for (const char* prefix : kLeadingPrefixes) {
            if (starts_with(out, 0, prefix)) {
                out.erase(0, std::char_traits<char>::length(prefix));
                changed = true;
            }
        }
    }
    for (const char* component : kWrapperComponents) {
        const size_t n = std::char_traits<char>::length(component);
        for (size_t at = out.find(component); at != std::string::npos;
             at = out.find(component, at)) {
            if (at == 0 || out[at - 1] == '.') {
                out.erase(at, n);
            } else {
                at += n;
            }
        }
    }
    return out;
}

TensorMap load_weights(const fs::path& path, const WeightLoadOptions& options) {
    if (!fs::exists(path)) {
        throw Error(fmt::format("weights '{}' do not exist", path.string()));
    }
    fs::path file = path;
    if (fs::is_directory(path)) file = resolve_directory(path);
    TensorMap raw;
    const std::string name = file.filename().string();
    if (ends_with(name, ".index.json")) {
        raw = load_sharded(file);
    } else if (is_torch_save(file)) {
        raw = load_checkpoint_weights(file, options);
    } else {
        raw = load_safetensors_file(file);
    }
    if (!options.strip_prefixes) return raw;
    TensorMap out;
    std::map<std::string, std::string> original;
    for (auto& [key, tensor] : raw) {
        std::string stripped = strip_wrapper_prefixes(key);
        auto [it, inserted] = original.emplace(stripped, key);
        if (!inserted) {
            throw FormatError(
                fmt::format("{}: '{}' and '{}' both become '{}' once wrapper "
                            "prefixes are removed",
                            file.string(), it->second, key, stripped));
        }
        out.emplace(std::move(stripped), std::move(tensor));
    }
    return out;
}

void check_weights(const TensorMap& got, const std::vector<ExpectedTensor>& expected,
                   const std::string& what) {
    std::vector<std::string> missing, unexpected, mis_shaped;
    std::set<std::string> expected_names;
    for (const auto& e : expected) {
        expected_names.insert(e.name);
        auto it = got.find(e.name);
        if (it == got.end()) {
            missing.push_back(fmt::format("{} {}", e.name, shape_text(e.shape)));
        } else if (it->second.sizes() != at::IntArrayRef(e.shape)) {
            mis_shaped.push_back(fmt::format("{}: expected {}, found {}", e.name,
                                             shape_text(e.shape), shape_text(it->second.sizes())));
        }
    }
    for (const auto& [name, tensor] : got) {
        if (expected_names.count(name) == 0) {
            unexpected.push_back(fmt::format("{} {}", name, shape_text(tensor.sizes())));
        }
    }
    if (missing.empty() && unexpected.empty() && mis_shaped.empty()) return;
    std::string message = fmt::format(
        "{}: weights do not match the model ({} expected, {} found): {} missing, {} unexpected, "
        "{} with the wrong shape",
        what, expected.size(), got.size(), missing.size(), unexpected.size(), mis_shaped.size());
    append_listed(message, "wrong shape", mis_shaped);
    append_listed(message, "missing", missing);
    append_listed(message, "unexpected", unexpected);
    throw FormatError(message);
}

}  // namespace qvg::core
