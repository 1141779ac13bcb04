#!/usr/bin/env bash
# Trains the built-in world model on a CUDA machine within one sitting and brings back what the
# repository keeps: the weights (split into parts: the device returns files of at most 16 MiB;
# reassemble with `cat world_model.safetensors.part-* > world_model.safetensors`), loss.csv,
# train_state.json and the log.
#   [QVG_RUN_DIR=runs/world] packaging/gpu/train-world.sh OUT SECONDS [qvg train options...]
# SECONDS bounds the whole script (build included); training gets what the build leaves. To
# continue a run, carry its directory to the device, name it in QVG_RUN_DIR and pass --resume.
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
left=$((budget - SECONDS - 25))
echo "build took ${SECONDS}s; training for up to ${left}s"
run="${QVG_RUN_DIR:-/tmp/qvg-world-run}"
./build-gpu/app/cli/qvg train --out "$run" --device cuda --time-limit-s "$left" "$@" >"$out/train.log" 2>&1
echo "train rc=$?"
tail -5 "$out/train.log"
cp "$run/loss.csv" "$run/train_state.json" "$out/" 2>/dev/null
split -b 15M -d "$run/world_model.safetensors" "$out/world_model.safetensors.part-"
ls -l "$out"
