#!/usr/bin/env bash
# Builds the headless targets on a CUDA machine (no Qt/FFmpeg needed), runs the GPU and golden
# suites and the DiT benchmark. Logs and JSON go to $1 (default ./gpu-out).
#   QVG_COMMIT=abc123 [KERNEL_BENCH_ARGS=--variants] packaging/gpu/build-and-bench.sh OUT [bench args...]
# (the machine may have no .git, so the commit to record is passed in)
set -uo pipefail
out="${1:-gpu-out}"
shift || true
mkdir -p "$out"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
{
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DQVG_BUILD_APP=OFF -DQVG_WITH_FFMPEG=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" &&
  ninja -C build-gpu qvg qvg_gpu_tests qvg_golden_tests
} >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
echo "build ok"
./build-gpu/tests/gpu/qvg_gpu_tests >"$out/gpu_tests.log" 2>&1; echo "gpu tests rc=$?"; tail -5 "$out/gpu_tests.log"
./build-gpu/tests/qvg_golden_tests >"$out/golden_tests.log" 2>&1; echo "golden tests rc=$?"; tail -3 "$out/golden_tests.log"
./build-gpu/app/cli/qvg kernel-bench ${KERNEL_BENCH_ARGS:-} --commit "${QVG_COMMIT:-unknown}" --json "$out/kernel_bench.json" 2>&1 | tee "$out/kernel_bench.txt"
./build-gpu/app/cli/qvg bench --commit "${QVG_COMMIT:-unknown}" --json "$out/bench.json" "$@" 2>"$out/bench.err" | tee "$out/bench.txt"
echo "bench rc=${PIPESTATUS[0]}"; tail -3 "$out/bench.err"
