#!/usr/bin/env bash
# Is the virtual clock faithful? With 2 ranks on a 2-core machine every rank has its own
# core, so the sleep clock (real delays) is the truth; the virtual clock should agree.
# Prints the median emulated step time of both clocks for a few links and their ratio, then
# the whole model's CPU time per step at 1, 2 and 8 ranks.
# Usage: scripts/clock_check.sh [steps]   (needs the release build and data/kjv)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
steps=${1:-30}
out=runs/clock-check; rm -rf "$out"; mkdir -p "$out"   # this script's own folder: each run starts it afresh
median() {  # JSONL file -> median step_time_emulated_s after 10 warm-up steps
  grep '"type":"step"' "$1" | sed -n 's/.*"step_time_emulated_s":\([-0-9.eE+]*\).*/\1/p' | tail -n +11 | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}
printf "%-14s %12s %12s %8s\n" link "sleep (ms)" "virtual (ms)" ratio
for link in off 80mbit 20mbit:20ms; do
  for clock in sleep virtual; do
    mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE .build/release/protomodel train \
      --steps "$steps" --microbatches 8 --batch-size 4 --eval-every 0 --clock $clock --link $link \
      --log "$out/$clock-$link.jsonl" --out "$out/model-$clock-$link" > "$out/$clock-$link.out" 2>&1
  done
  s=$(median "$out/sleep-$link.jsonl"); v=$(median "$out/virtual-$link.jsonl")
  awk -v l="$link" -v s="$s" -v v="$v" 'BEGIN { printf "%-14s %12.1f %12.1f %8.3f\n", l, s * 1000, v * 1000, v / s }'
done

# Is a stage's CPU time the same however many ranks share the cores? The virtual clock
# charges each action its thread CPU time, so the whole model's forward + backward CPU
# seconds per step (summed over stages) must not depend on the rank count: np=1 (one
# process), 2 (a core each) and 8 (four ranks per core).
echo
printf "%-6s %22s %8s\n" ranks "fwd+bwd CPU/step (ms)" "vs np=1"
cpu() {  # JSONL file -> median over steps 11.. of the summed stage fwd_s + bwd_s
  python3 - "$1" <<'PY'
import json, statistics, sys
t = [sum(s["fwd_s"] + s["bwd_s"] for s in r["stages"]) for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "step"]
print(statistics.median(t[10:]) if len(t) > 10 else "nan")
PY
}
base=""
for np in 1 2 8; do
  mpirun --oversubscribe -np $np -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE .build/release/protomodel train \
    --steps "$steps" --microbatches 8 --batch-size 4 --eval-every 0 --clock virtual \
    --log "$out/cpu-np$np.jsonl" --out "$out/model-np$np" > "$out/cpu-np$np.out" 2>&1
  c=$(cpu "$out/cpu-np$np.jsonl"); base=${base:-$c}
  awk -v n="$np" -v c="$c" -v b="$base" 'BEGIN { printf "%-6s %22.1f %8.3f\n", n, c * 1000, c / b }'
done
