#!/usr/bin/env bash
# Module boundaries (docs/architecture): Torch only in core/ (and tests, app's CLI), Qt only in
# app/. Fails listing the offending lines.
set -u
cd "$(dirname "$0")/.."
status=0
torch=$(grep -rnE '#include <(torch/|ATen/|c10/)' render input kernels 2>/dev/null)
if [ -n "$torch" ]; then echo "Torch headers outside core/app/tests:"; echo "$torch"; status=1; fi
qt=$(grep -rnE '#include <Q[A-Za-z]' core render input kernels 2>/dev/null)
if [ -n "$qt" ]; then echo "Qt headers outside app/:"; echo "$qt"; status=1; fi
full=$(grep -rn '#include <torch/torch.h>' core app tests 2>/dev/null)
if [ -n "$full" ]; then echo "torch/torch.h is too heavy; include ATen/ATen.h or torch/types.h:"; echo "$full"; status=1; fi
[ $status -eq 0 ] && echo "layering ok"
exit $status
