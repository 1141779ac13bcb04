#!/usr/bin/env bash
# Evaluates the built-in world model on a CUDA machine with many walks at once: builds the `qvg`
# target only, then keeps PROCS `qvg eval --device cuda` processes (and QVG_CPU_PROCS more on the
# CPU, one thread each) busy side by side. Each process slot runs one walk seed after another
# (FIRST_SEED, FIRST_SEED + 1, ... handed out in turn, each the walk seed and the noise and codec
# seed of its `qvg eval`, so that walks differ in their noise too) with the arguments given (add --walks,
# --trajectories, --caches ...), and starts no new seed once QVG_EVAL_SECONDS (default 420) have
# passed or its last seed's time would overrun them, so the call ends on time with whole reports;
# a slot whose run fails stops.
# Brings back the reports packed in eval.tar.gz (the device returns at most 8 files), their
# outputs, and the per-walk losses of all reports together (packaging/eval/cache_losses.py).
#   QVG_COMMIT=abc123 packaging/gpu/eval-world.sh OUT PROCS FIRST_SEED [qvg eval options...]
# QVG_BIN=path/to/qvg skips the build; QVG_EVAL_DEVICE=cpu runs the PROCS slots on the CPU too
# (a dry run here); QVG_MAX_SEEDS bounds the seeds handed out. On a machine of several GPUs the
# GPU slots take GPU 0, 1, ... in turn, each seeing only its own (CUDA_VISIBLE_DEVICES; QVG_GPUS
# overrides the count nvidia-smi gives).
# Example: return walks of every cache at 4.12 MiB, 4 GPU and 11 CPU slots, 7 minutes:
#   QVG_CPU_PROCS=11 packaging/gpu/eval-world.sh $OUT 4 100 --threads 1
#     --model assets/world/world_model.safetensors --frames 128 --trajectories return --walks 2
#     --no-ahead --windows 16 --caches bf16 qvg-int2-s1-c8-asym kivi-int2 rtn-int2-g32-asym
# On the GPU, many walks per process side by side (--walks 64 --batch 64, --threads 4, two
# processes per GPU) score about 6 times the walks a minute of one walk per process.
set -uo pipefail
mkdir -p "${1:?OUT}/eval"
out="$(cd "$1" && pwd)"
procs="${2:?PROCS}"
first="${3:?FIRST_SEED}"
shift 3
cpu_procs="${QVG_CPU_PROCS:-0}"
budget="${QVG_EVAL_SECONDS:-420}"
max_seeds="${QVG_MAX_SEEDS:-1000000}"
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
# Seeds are handed out through a counter file under a lock, so slots never share one.
counter="$out/.next-seed"
echo "$first" >"$counter"
take_seed() {
  (
    flock 9
    local s
    s=$(<"$counter")
    if ((s - first >= max_seeds)); then echo -1; else echo $((s + 1)) >"$counter" && echo "$s"; fi
  ) 9>"$counter.lock"
}
slot() {  # device
  local device="$1" last=0 seed t0
  shift
  while :; do
    (( SECONDS - start + last <= budget )) || break
    seed=$(take_seed)
    ((seed >= 0)) || break
    t0=$SECONDS
    "$qvg" eval --device "$device" --commit "${QVG_COMMIT:-unknown}" --walk-seed "$seed" --seed "$seed" \
      --out "$out/eval/walk-seed-$seed.json" "$@" >"$out/eval/walk-seed-$seed.txt" 2>&1 || {
      echo "walk seed $seed ($device) failed; this slot stops"
      tail -5 "$out/eval/walk-seed-$seed.txt"
      break
    }
    last=$((SECONDS - t0))
    echo "walk seed $seed on $device: ${last}s"
  done
}
gpus="${QVG_GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}"
((gpus >= 1)) || gpus=1
pids=()
for ((i = 0; i < procs; ++i)); do
  if ((gpus > 1)); then
    CUDA_VISIBLE_DEVICES=$((i % gpus)) slot "${QVG_EVAL_DEVICE:-cuda}" "$@" &
  else
    slot "${QVG_EVAL_DEVICE:-cuda}" "$@" &
  fi
  pids+=($!)
done
for ((i = 0; i < cpu_procs; ++i)); do
  slot cpu "$@" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
done_seeds=$(ls "$out"/eval/*.json 2>/dev/null | wc -l)
echo "eval: $((procs + cpu_procs)) slots, $done_seeds walk seeds in $((SECONDS - start))s"
grep -h "error" "$out"/eval/*.txt | head -20
rm -f "$counter" "$counter.lock"
if compgen -G "$out/eval/*.json" >/dev/null; then
  python3 packaging/eval/cache_losses.py --csv "$out/losses.csv" ${QVG_VERSUS:+--versus "$QVG_VERSUS"} \
    "$out"/eval/*.json >"$out/losses.md" && cat "$out/losses.md"
fi
# The device brings back files of at most 16 MiB: a larger archive comes in parts (cat to join).
tar -czf "$out/eval.tar.gz" -C "$out" eval && rm -rf "$out/eval"
if (($(stat -c %s "$out/eval.tar.gz") > 15 * 1048576)); then
  split -b 15M -d "$out/eval.tar.gz" "$out/eval.tar.gz.part" && rm "$out/eval.tar.gz"
fi
ls -l "$out"
