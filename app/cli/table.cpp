#include "table.h"

#include <algorithm>
#include <sstream>

namespace qvg::cli {

std::string Table::str() const {
    std::vector<size_t> width(header_.size(), 0);
    auto measure = [&](const std::vector<std::string>& r) {
        for (size_t i = 0; i < r.size() && i < width.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
    };
    measure(header_);
    for (const auto& r : rows_) measure(r);
    std::ostringstream out;
    auto line = [&](const std::vector<std::string>& r) {
        for (size_t i = 0; i < width.size(); ++i) {
            const std::string cell = i < r.size() ? r[i] : "";
            const std::string pad(width[i] - cell.size(), ' ');
            out << (i ? "  " : "") << (i == 0 ? cell + pad : pad + cell);
        }
        out << "\n";
    };
    line(header_);
    size_t total = 0;
    for (size_t w : width) total += w;
    out << std::string(total + 2 * (width.size() - 1), '-') << "\n";
    for (const auto& r : rows_) line(r);
    return out.str();
}

}  // namespace qvg::cli
