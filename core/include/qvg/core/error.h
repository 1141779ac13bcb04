#pragma once
// Errors raised by qvg for caller mistakes (bad shapes, missing files, corrupt weights).
// Messages say what was expected and what was found. Broken invariants use assert instead.

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qvg::core {

class Error : public std::runtime_error {
  public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Thrown for malformed, truncated or mismatched files.
class FormatError : public Error {
  public:
    using Error::Error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace qvg::core

// QVG_CHECK(cond, "format {}", args...): throws qvg::core::Error with the formatted message.
#define QVG_CHECK(cond, ...)                         \
    do {                                             \
        if (!(cond)) ::qvg::core::fail(__VA_ARGS__); \
    } while (0)
