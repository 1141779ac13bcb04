#pragma once
// Helpers of the input/ suites for checking the errors of loaders on edited JSON text.

#include <qvg/input/file_error.h>

#include <gtest/gtest.h>

#include <string>

namespace qvg::input {

// Runs a call that must throw InputFileError and returns its message.
template <class Call>
std::string input_error_of(Call&& call) {
    try {
        call();
    } catch (const InputFileError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected an InputFileError";
    return {};
}

// text with its first occurrence of `from` replaced by `to`; fails the test if there is none.
inline std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos == std::string::npos) return text;
    return text.replace(pos, from.size(), to);
}

}  // namespace qvg::input
