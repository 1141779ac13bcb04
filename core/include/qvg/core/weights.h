#pragma once
// One entry point for model weights, whatever the file: a torch.save checkpoint (.pt / .pth, e.g.
// self_forcing_dmd.pt), a safetensors file (Wan's diffusion_pytorch_model.safetensors), or a
// directory holding either (sharded safetensors with their index included). Names come out without
// the wrapper prefixes that training adds (model., module., _fsdp_wrapped_module., _orig_mod.),
// and check_weights compares them against what a model expects in one readable error.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qvg::core {

using TensorMap = std::map<std::string, at::Tensor>;

struct WeightLoadOptions {
    // torch.save checkpoints only: the top-level entry holding the state dict. Empty picks
    // 'generator_ema', else 'generator', else the top level itself when it is a flat state dict.
    // Ignored for safetensors, which have no nesting.
    std::string checkpoint_key;
    // Remove the wrapper prefixes (see strip_wrapper_prefixes).
    bool strip_prefixes = true;
};

// Loads every tensor of a weight file or directory as CPU tensors that view the memory-mapped file
// where alignment allows. Format by magic bytes: "PK\3\4" is a torch.save zip (a bare pickle is the
// legacy torch.save format and is refused as such), anything else is read as safetensors. A
// directory resolves, in order, to diffusion_pytorch_model.safetensors, model.safetensors, a
// *.safetensors.index.json with its shards, the only *.safetensors, or the only .pt / .pth / .ckpt
// file. Throws Error for missing files and FormatError for malformed or ambiguous input, naming the
// file and what was expected.
TensorMap load_weights(const std::filesystem::path& path, const WeightLoadOptions& options = {});

// Removes, repeatedly and in any order, the leading prefixes 'model.', 'module.',
// '_fsdp_wrapped_module.' and '_orig_mod.', and the wrapper components '_fsdp_wrapped_module.',
// '_checkpoint_wrapped_module.' and '_orig_mod.' anywhere in the name (FSDP and activation
// checkpointing insert those inside block names; they are never real parameter names).
// "_fsdp_wrapped_module.model.blocks.0._orig_mod.q.weight" -> "blocks.0.q.weight".
std::string strip_wrapper_prefixes(const std::string& name);

struct ExpectedTensor {
    std::string name;
    std::vector<int64_t> shape;
};

// Throws one FormatError that lists every missing, unexpected and mis-shaped tensor (expected and
// found shapes), a bounded number per kind followed by "and N more". `what` names the model or
// file in the message ("Wan 1.3B DiT from self_forcing_dmd.pt").
void check_weights(const TensorMap& got, const std::vector<ExpectedTensor>& expected,
                   const std::string& what);

}  // namespace qvg::core
