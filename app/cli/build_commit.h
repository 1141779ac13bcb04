#pragma once
// The commit this binary was built from, for benchmark and evaluation records: HEAD's short hash
// at build time, "-dirty" when tracked files differed from it, "unknown" outside git.

namespace qvg::cli {

const char* build_commit();

}  // namespace qvg::cli
