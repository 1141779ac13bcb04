#!/usr/bin/env bash
# Trains the built-in world model on a CUDA machine within one sitting and brings back what the
# repository keeps: the weights (split into parts: the device returns files of at most 16 MiB;
# reassemble with `cat world_model.safetensors.part-* > world_model.safetensors`), loss.csv,
# train_state.json and the log.
#   [QVG_RUN_DIR=/tmp/qvg-world-run] [QVG_SEED_RUN=runs/world] [QVG_KERNEL_CHECK=1] \
#     packaging/gpu/train-world.sh OUT SECONDS [qvg train options...]
# SECONDS bounds the whole script (build included); training gets what the build leaves. The run
# lives outside the working tree (QVG_RUN_DIR, default /tmp/qvg-world-run), so calls that follow
# each other on a warm machine continue it with its optimizer state. To continue a run kept on the
# development machine, carry its directory, name it in QVG_SEED_RUN (copied into the run directory
# when that has no run yet) and pass --resume. QVG_KERNEL_CHECK=1 runs the GPU tests (a process
# per suite), `qvg kernel-bench` and `qvg kernel-bench --variants` after the build, before
# training (QVG_COMMIT names the commit); QVG_DIT_BENCH=1 then also runs `qvg bench --frames
# 120` (the end-to-end cost of the QVG cache; over 110 s, which training loses). Their logs and
# tables come back packed in kernel_check.tar.gz, because the device returns at most 8 files and
# the weights need 3.
set -uo pipefail
out="${1:?OUT}"
budget="${2:?SECONDS}"
shift 2
mkdir -p "$out"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
{
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DQVG_BUILD_APP=OFF -DQVG_WITH_FFMPEG=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" &&
  ninja -C build-gpu qvg qvg_gpu_tests qvg_golden_tests
} >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
rm -f "$out/build.log"
run="${QVG_RUN_DIR:-/tmp/qvg-world-run}"
if [[ -n "${QVG_SEED_RUN:-}" && ! -f "$run/train_state.json" ]]; then
  mkdir -p "$run" && cp -r "$QVG_SEED_RUN"/. "$run"/ && echo "run seeded from $QVG_SEED_RUN"
fi
if [[ "${QVG_KERNEL_CHECK:-0}" == 1 ]]; then
  kc="$out/kernel_check"
  mkdir -p "$kc"
  # One process per suite: a kernel that faults poisons its CUDA context, and the suites after it
  # would fail for its sake. The plain table first, so a faulting variant cannot take it along.
  for suite in DecodeKernel CudaCodec EncodeKernel; do
    ./build-gpu/tests/gpu/qvg_gpu_tests --gtest_filter="$suite.*" >"$kc/gpu_tests_$suite.log" 2>&1
    echo "gpu tests $suite rc=$?"; tail -1 "$kc/gpu_tests_$suite.log"
  done
  ./build-gpu/app/cli/qvg kernel-bench --commit "${QVG_COMMIT:-unknown}" \
    --json "$kc/kernel_bench_default.json" >"$kc/kernel_bench_default.txt" 2>&1
  echo "kernel-bench rc=$?"
  ./build-gpu/app/cli/qvg kernel-bench --variants --commit "${QVG_COMMIT:-unknown}" \
    --json "$kc/kernel_bench.json" >"$kc/kernel_bench.txt" 2>&1
  echo "kernel-bench --variants rc=$?"
  if [[ "${QVG_DIT_BENCH:-0}" == 1 ]]; then
    ./build-gpu/app/cli/qvg bench --frames 120 --commit "${QVG_COMMIT:-unknown}" \
      --json "$kc/bench.json" >"$kc/bench.txt" 2>"$kc/bench.err"
    echo "bench rc=$?"; tail -4 "$kc/bench.txt"
  fi
  tar -czf "$out/kernel_check.tar.gz" -C "$out" kernel_check && rm -rf "$kc"
fi
left=$((budget - SECONDS - 25))
echo "build took ${SECONDS}s; training for up to ${left}s"
./build-gpu/app/cli/qvg train --out "$run" --device cuda --time-limit-s "$left" "$@" >"$out/train.log" 2>&1
echo "train rc=$?"
tail -5 "$out/train.log"
cp "$run/loss.csv" "$run/train_state.json" "$out/" 2>/dev/null
split -b 15M -d "$run/world_model.safetensors" "$out/world_model.safetensors.part-"
ls -l "$out"
