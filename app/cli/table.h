#pragma once
// Plain-text tables for the CLI: right-aligned numeric columns, left-aligned first column.

#include <string>
#include <vector>

namespace qvg::cli {

class Table {
  public:
    explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    std::string str() const;

  private:
    std::vector<std::string> header_;
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace qvg::cli
