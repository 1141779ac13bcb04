#pragma once
// Writes a command's JSON report (indented, newline-terminated); a file that cannot be written
// fails with the option that named it.

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "qvg/core/error.h"

namespace qvg::cli {

inline void write_json_file(const std::string& path, const nlohmann::json& j,
                            const std::string& option) {
    std::ofstream out(path);
    out << j.dump(2) << "\n";
    QVG_CHECK(out.good(), "{} {}: cannot write the file", option, path);
}

}  // namespace qvg::cli
