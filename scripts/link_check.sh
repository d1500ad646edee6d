#!/usr/bin/env bash
# Emulator validation against real links: the same run (default model, M=8, B=4, one rank
# per host) on shared memory with the emulator charging the link (--link, sleep clock) and
# across namespaced hosts (scripts/hosts.sh: TCP, each host's egress shaped by the kernel),
# for dense and subspace k=16:
#   2 hosts: unshaped, 20, 80 and 200 Mbit/s
#   3 hosts: unshaped, 80 Mbit/s, and mixed links (boundary 0 at 20 Mbit/s, boundary 1 at 200)
# Then `protomodel link-report` writes OUT/results.md (median step times, emulated / real)
# and OUT/emulator_vs_real.svg. On this 2-core machine 2 hosts give each rank its own core
# (an honest measurement); 3 hosts share 2 cores, in both the emulated and the real run.
# The kernel has no netem: the real links have bandwidth and no added latency.
#   scripts/link_check.sh [STEPS=14] [OUT=bench/links]      (about 15 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-14}; out=${2:-bench/links}
scripts/hosts.sh check || { echo "link-check: skipped — namespaces cannot be made here"; exit 0; }
source scripts/env.sh
BIN=$PWD/.build/release/protomodel
[ -x "$BIN" ] || { echo "link-check: build first: swift build -c release --product protomodel" >&2; exit 1; }
runs=$out/runs
mkdir -p "$runs"
rm -f "$runs"/*__*h__emu__* "$runs"/*__*h__real__*   # this script's own earlier logs (a log is appended to)
common=(--data "$PWD/data/kjv" --steps "$steps" --eval-every 0 --eval-batches 4 --clock sleep --out "$PWD/$runs/model")
pair() {  # hosts, codec, link (emulator syntax), real rates (hosts.sh syntax)
  local h=$1 codec=$2 link=$3 rates=$4
  # File names as LinkValidationReport.fileName makes them: CODEC__Nh__emu|real__LINK.jsonl
  local emu="$PWD/$runs/${codec}__${h}h__emu__${link//\//-}.jsonl" real="$PWD/$runs/${codec}__${h}h__real__${link//\//-}.jsonl"
  rm -rf "$PWD/$runs/model"   # this script's scratch model folder (a new run refuses to overwrite a model)
  mpirun --oversubscribe -np "$h" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE --bind-to none "$BIN" train "${common[@]}" \
    --codec "$codec" --link "$link" --log "$emu" > "$emu.out" 2>&1 || { echo "link-check: emulated run failed:" >&2; cat "$emu.out" >&2; exit 1; }
  rm -rf "$PWD/$runs/model"
  scripts/hosts.sh run "$h" "$rates" -- train "${common[@]}" --codec "$codec" --log "$real" > "$real.out" 2>&1 ||
    { echo "link-check: real run failed:" >&2; cat "$real.out" >&2; exit 1; }
  echo "link-check: $h hosts, $codec, $link done" >&2
}
each() { local r=$1 n=$2 s=""; for _ in $(seq 1 "$n"); do s+="${s:+,}$r"; done; echo "$s"; }
for codec in dense subspace:16; do
  pair 2 "$codec" off off,off
  for rate in 20mbit 80mbit 200mbit; do pair 2 "$codec" "$rate" "$(each "$rate" 2)"; done
  pair 3 "$codec" off off,off,off
  pair 3 "$codec" 80mbit "$(each 80mbit 3)"
  pair 3 "$codec" 20mbit/200mbit 20mbit,20mbit/200mbit,200mbit
done
rm -rf "$runs/model"
"$BIN" link-report "$runs" --out "$out" --skip 4 \
  --note "# Emulator vs kernel-shaped links ($(git rev-parse --short HEAD), $(date -u +%F), \`scripts/link_check.sh $steps\`)

Median wall-clock step time (ms) of steps 5…$steps, default model, M=8, B=4, one rank per host, sleep clock.
Emulated: shared memory with \`--link LINK\` (for \"unshaped\": no link). Real: \`scripts/hosts.sh run N RATES\`
(TCP between network namespaces, each host's egress shaped by tbf, or by htb per destination for mixed links;
burst 4 KB; no added latency). 2 hosts give each rank its own core; 3 hosts share this machine's 2 cores."
command -v rsvg-convert >/dev/null && rsvg-convert "$out/emulator_vs_real.svg" -o "$out/emulator_vs_real.png" || true
