#pragma once
// Strict, typed access to JSON documents for the loaders: every failure throws InputFileError
// naming the source, the field's JSON path and what was expected.

#include <qvg/input/file_error.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

namespace qvg::input::detail {

class JsonReader {
  public:
    explicit JsonReader(std::string source) : source_(std::move(source)) {}

    // Parses text; a syntax error or truncation becomes InputFileError with the byte position.
    nlohmann::json parse(std::string_view text) const;
    // Reads and parses a file (missing or unreadable files are errors too).
    nlohmann::json parse_file(const std::filesystem::path& path) const;

    [[noreturn]] void fail(std::string_view where, std::string_view message) const;

    const nlohmann::json& object(const nlohmann::json& j, std::string_view where) const;
    const nlohmann::json& array(const nlohmann::json& j, std::string_view where) const;
    // A required member of an object.
    const nlohmann::json& member(const nlohmann::json& obj, std::string_view where,
                                 const char* key) const;
    // Rejects members not in `allowed` (catches misspelt settings).
    void only_members(const nlohmann::json& obj, std::string_view where,
                      std::initializer_list<std::string_view> allowed) const;

    double number(const nlohmann::json& j, std::string_view where) const;  // finite
    std::int64_t integer(const nlohmann::json& j, std::string_view where, std::int64_t lo,
                         std::int64_t hi) const;
    std::uint64_t unsigned_integer(const nlohmann::json& j, std::string_view where) const;
    bool boolean(const nlohmann::json& j, std::string_view where) const;
    std::string string(const nlohmann::json& j, std::string_view where) const;
    // The "format" and "version" members every qvg JSON file starts with.
    void header(const nlohmann::json& root, std::string_view format, int version) const;

  private:
    std::string source_;
};

// A short, one-line rendering of a value for error messages.
std::string describe(const nlohmann::json& j);

// Writes text to path through a temporary file and a rename, so that a failed save never leaves
// a truncated file behind. Throws InputFileError.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace qvg::input::detail
