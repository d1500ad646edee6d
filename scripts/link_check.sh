#!/usr/bin/env bash
# Emulator validation against real links: the same run (default model, M=8, B=4) on the
# multi-host test bed (scripts/hosts.sh: network namespaces, TCP, each host's egress shaped
# by the kernel's token bucket) and on shared memory with the emulator charging the same
# bandwidth (--link RATE, sleep clock), for each rate and codec. Prints a Markdown table of
# median step times (steps 5…STEPS) and writes it to OUT/results.md.
#   scripts/link_check.sh [HOSTS=2] [STEPS=14] [OUT=bench/links]
# Two hosts give each rank its own core on this 2-core machine (honest); three share cores.
# The kernel has no netem: the real links have bandwidth and no added latency.
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${1:-2}; steps=${2:-14}; out=${3:-bench/links}
scripts/hosts.sh check || { echo "link-check: skipped — namespaces cannot be made here"; exit 0; }
source scripts/env.sh
mkdir -p "$out/runs"
BIN=$PWD/.build/release/protomodel
median() {  # JSONL file: median step_time_s of steps 5..N
  python3 - "$1" <<'PY'
import json, sys, statistics
t = [json.loads(l)["step_time_s"] for l in open(sys.argv[1]) if '"type":"step"' in l]
print(f"{statistics.median(t[4:]) * 1000:.1f}" if len(t) > 4 else "nan")
PY
}
common=(--data "$PWD/data/kjv" --steps "$steps" --eval-every 0 --eval-batches 4 --clock sleep)
rows=()
for codec in dense subspace:16; do
  tag=${codec%%:*}
  # Unshaped: shared memory vs TCP across the namespaced hosts.
  mpirun --oversubscribe -np "$hosts" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE --bind-to none "$BIN" train "${common[@]}" \
    --codec "$codec" --out "$PWD/$out/runs/x" --log "$PWD/$out/runs/$tag-shm-off.jsonl" > /dev/null
  rates=$(printf 'off%.0s,' $(seq 1 "$hosts")); rates=${rates%,}
  scripts/hosts.sh run "$hosts" "$rates" -- train "${common[@]}" --codec "$codec" --out "$PWD/$out/runs/x" \
    --log "$PWD/$out/runs/$tag-tcp-off.jsonl" > /dev/null
  shm=$(median "$out/runs/$tag-shm-off.jsonl"); tcp=$(median "$out/runs/$tag-tcp-off.jsonl")
  rows+=("| $codec | unshaped | $shm (shared memory, no link) | $tcp | $(python3 -c "print(f'{$tcp/$shm:.2f}')") |")
  for rate in 20mbit 80mbit 200mbit; do
    mpirun --oversubscribe -np "$hosts" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE --bind-to none "$BIN" train "${common[@]}" \
      --codec "$codec" --link "$rate" --out "$PWD/$out/runs/x" --log "$PWD/$out/runs/$tag-emu-$rate.jsonl" > /dev/null
    rates=$(printf "$rate%.0s," $(seq 1 "$hosts")); rates=${rates%,}
    scripts/hosts.sh run "$hosts" "$rates" -- train "${common[@]}" --codec "$codec" --out "$PWD/$out/runs/x" \
      --log "$PWD/$out/runs/$tag-real-$rate.jsonl" > /dev/null
    emu=$(median "$out/runs/$tag-emu-$rate.jsonl"); real=$(median "$out/runs/$tag-real-$rate.jsonl")
    rows+=("| $codec | $rate | $emu | $real | $(python3 -c "print(f'{$emu/$real:.2f}')") |")
    echo "link-check: $codec $rate: emulated $emu ms, real $real ms" >&2
  done
done
{
  echo "# Emulator vs kernel-shaped links ($hosts hosts, $(git rev-parse --short HEAD), $(date -u +%F))"
  echo
  echo "Median wall-clock step time (ms) of steps 5…$steps, default model, M=8, B=4, sleep clock."
  echo "Emulated: shared memory with \`--link RATE\`. Real: \`scripts/hosts.sh run $hosts RATE,…\` (TCP, tbf burst 4 KB, no added latency)."
  echo "For the unshaped rows the ratio is TCP / shared memory; for the others emulated / real."
  echo
  echo "| codec | link | emulated (ms) | real (ms) | ratio |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/results.md"
rm -rf "$out/runs/x"
