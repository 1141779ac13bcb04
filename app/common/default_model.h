#pragma once
// Where qvg-world and `qvg generate` find their default model when no --model is given: the
// world model that `qvg train` writes, installed beside the program or kept in the source tree.

#include <filesystem>
#include <optional>

namespace qvg::app {

// The first existing file of: `env_value` (the contents of $QVG_WORLD_MODEL; null or empty:
// skipped), <executable_dir>/../share/qvg/world/world_model.safetensors,
// <source_dir>/assets/world/world_model.safetensors (empty directories: skipped). None: nullopt.
std::optional<std::filesystem::path> find_default_model(const char* env_value,
                                                        const std::filesystem::path& executable_dir,
                                                        const std::filesystem::path& source_dir);

// find_default_model with $QVG_WORLD_MODEL, the running executable's directory and the source
// directory this program was built from.
std::optional<std::filesystem::path> default_model_path();

}  // namespace qvg::app
