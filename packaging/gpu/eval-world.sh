#!/usr/bin/env bash
# Evaluates the built-in world model on a CUDA machine with many walks at once: builds the `qvg`
# target only, then runs PROCS `qvg eval --device cuda` processes side by side, process i with
# walk seed FIRST_SEED + i and the arguments given (add --walks, --trajectories, --caches ...).
# Brings back the reports packed in eval.tar.gz (the device returns at most 8 files), their
# outputs, and the per-walk losses of all reports together (packaging/eval/cache_losses.py).
#   QVG_COMMIT=abc123 packaging/gpu/eval-world.sh OUT PROCS FIRST_SEED [qvg eval options...]
# QVG_BIN=path/to/qvg skips the build; QVG_EVAL_DEVICE=cpu runs on the CPU (a dry run here).
# Example: 64 return walks of every cache at 4.12 MiB in 8 processes:
#   packaging/gpu/eval-world.sh $OUT 8 100 --model assets/world/world_model.safetensors
#     --frames 128 --trajectories return --walks 8 --no-ahead
#     --caches bf16 qvg-int2-s1-c8-asym kivi-int2 rtn-int2 rtn-int2-g32-asym quarot-int2
set -uo pipefail
mkdir -p "${1:?OUT}/eval"
out="$(cd "$1" && pwd)"
procs="${2:?PROCS}"
first="${3:?FIRST_SEED}"
shift 3
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
qvg="${QVG_BIN:-}"
if [[ -z "$qvg" ]]; then
  {
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DQVG_BUILD_APP=OFF -DQVG_WITH_FFMPEG=OFF \
      -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" && ninja -C build-gpu qvg
  } >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
  rm -f "$out/build.log"
  echo "build took ${SECONDS}s"
  qvg=./build-gpu/app/cli/qvg
fi
start=$SECONDS
pids=()
for ((i = 0; i < procs; ++i)); do
  seed=$((first + i))
  "$qvg" eval --device "${QVG_EVAL_DEVICE:-cuda}" --commit "${QVG_COMMIT:-unknown}" --walk-seed "$seed" \
    --out "$out/eval/walk-seed-$seed.json" "$@" >"$out/eval/walk-seed-$seed.txt" 2>&1 &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
echo "eval: $procs processes in $((SECONDS - start))s, $failed failed"
grep -h "error" "$out"/eval/*.txt | head -20
if compgen -G "$out/eval/*.json" >/dev/null; then
  python3 packaging/eval/cache_losses.py "$out"/eval/*.json >"$out/losses.md" && cat "$out/losses.md"
fi
tar -czf "$out/eval.tar.gz" -C "$out" eval && rm -rf "$out/eval"
ls -l "$out"
