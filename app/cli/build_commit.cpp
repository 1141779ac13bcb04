// The only file that includes the generated stamp, so a new commit recompiles one file.
#include "build_commit.h"

#include "qvg_commit.h"

namespace qvg::cli {

const char* build_commit() { return QVG_GIT_COMMIT; }

}  // namespace qvg::cli
