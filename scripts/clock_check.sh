#!/usr/bin/env bash
# Is the virtual clock faithful? With 2 ranks on a 2-core machine every rank has its own
# core, so the sleep clock (real delays) is the truth; the virtual clock should agree.
# Prints the median emulated step time of both clocks for a few links and their ratio.
# Usage: scripts/clock_check.sh [steps]   (needs the release build and data/kjv)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
steps=${1:-30}
out=runs/clock-check; mkdir -p "$out"
median() {  # JSONL file -> median step_time_emulated_s after 10 warm-up steps
  grep '"type":"step"' "$1" | sed -n 's/.*"step_time_emulated_s":\([-0-9.eE+]*\).*/\1/p' | tail -n +11 | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}
printf "%-14s %12s %12s %8s\n" link "sleep (ms)" "virtual (ms)" ratio
for link in off 80mbit 20mbit:20ms; do
  for clock in sleep virtual; do
    mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE .build/release/protomodel train \
      --steps "$steps" --microbatches 8 --batch-size 4 --eval-every 0 --clock $clock --link $link \
      --log "$out/$clock-$link.jsonl" --out "$out/model" > "$out/$clock-$link.out" 2>&1
  done
  s=$(median "$out/sleep-$link.jsonl"); v=$(median "$out/virtual-$link.jsonl")
  awk -v l="$link" -v s="$s" -v v="$v" 'BEGIN { printf "%-14s %12.1f %12.1f %8.3f\n", l, s * 1000, v * 1000, v / s }'
done
