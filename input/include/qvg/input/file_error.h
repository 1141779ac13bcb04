#pragma once
// The error every input/ loader throws for a file it cannot use: the message names the file, the
// JSON path of the offending field, what was expected and what was found.

#include <stdexcept>
#include <string>

namespace qvg::input {

class InputFileError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace qvg::input
