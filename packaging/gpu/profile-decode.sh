#!/usr/bin/env bash
# The decode kernel under the microscope on a CUDA machine: builds qvg and the GPU tests, runs
# the decode suites, `qvg kernel-bench --variants`, then Nsight Compute (throughput, memory,
# occupancy, warp stalls) on the first launch of each kernel whose mangled name matches a
# regex, inside `qvg kernel-bench --stages 1 --variants` (so INT2 G64 S1 launches come first).
# At most 8 files land in OUT (the device tool's limit).
#   QVG_COMMIT=abc123 packaging/gpu/profile-decode.sh OUT REGEX...
# e.g. REGEX 'decode_kernelILi2ELb0ELi1ELb0ELi4ELb1ELb0E' is the default INT2 symmetric S1 launch.
set -uo pipefail
out="${1:?OUT}"
shift
mkdir -p "$out"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
{
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DQVG_BUILD_APP=OFF -DQVG_WITH_FFMPEG=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" &&
  ninja -C build-gpu qvg qvg_gpu_tests
} >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
rm -f "$out/build.log"
echo "build took ${SECONDS}s"
for suite in DecodeKernel CudaCodec; do
  ./build-gpu/tests/gpu/qvg_gpu_tests --gtest_filter="$suite.*" >>"$out/gpu_tests.log" 2>&1
  echo "gpu tests $suite rc=$?"; tail -1 "$out/gpu_tests.log"
done
qvg=./build-gpu/app/cli/qvg
$qvg kernel-bench --variants --commit "${QVG_COMMIT:-unknown}" --json "$out/kernel_bench.json" \
  >"$out/kernel_bench.txt" 2>&1
echo "kernel-bench --variants rc=$?"
i=0
for re in "$@"; do
  i=$((i + 1))
  ncu --clock-control none --kernel-name-base mangled -k "regex:$re" -c 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
    --section WarpStateStats --section SchedulerStats --section LaunchStats \
    $qvg kernel-bench --stages 1 --variants --reps 3 >"$out/ncu_$i.txt" 2>&1
  echo "ncu $i ($re) rc=$? after ${SECONDS}s"
done
