#include "default_model.h"

#include <cstdlib>
#include <system_error>

namespace qvg::app {
namespace {

bool is_file(const std::filesystem::path& p) {
    std::error_code ec;
    return !p.empty() && std::filesystem::is_regular_file(p, ec);
}

}  // namespace

std::optional<std::filesystem::path> find_default_model(
    const char* env_value, const std::filesystem::path& executable_dir,
    const std::filesystem::path& source_dir) {
    if (env_value != nullptr && env_value[0] != '\0' && is_file(env_value)) {
        return std::filesystem::path(env_value);
    }
    if (!executable_dir.empty()) {
        const auto p = executable_dir / ".." / "share" / "qvg" / "world" / "world_model.safetensors";
        if (is_file(p)) return p.lexically_normal();
    }
    if (!source_dir.empty()) {
        const auto p = source_dir / "assets" / "world" / "world_model.safetensors";
        if (is_file(p)) return p;
    }
    return std::nullopt;
}

std::optional<std::filesystem::path> default_model_path() {
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
#ifdef QVG_SOURCE_DIR
    const std::filesystem::path source = QVG_SOURCE_DIR;
#else
    const std::filesystem::path source;
#endif
    return find_default_model(std::getenv("QVG_WORLD_MODEL"), ec ? std::filesystem::path()
                                                                 : exe.parent_path(),
                              source);
}

}  // namespace qvg::app
