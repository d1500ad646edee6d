#!/usr/bin/env bash
# Multi-rank checks under real mpirun (XCTest runs on one rank): the N-rank pipeline must
# log the same per-step losses as one process, bad input must fail fast on every rank.
# Needs the release build and data/kjv (scripts/test.sh provides both).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BIN=.build/release/protomodel
OUT=runs/mpi-checks
rm -rf "$OUT"; mkdir -p "$OUT"
fail=0
run() {  # np, name, train flags...
  local np=$1 name=$2; shift 2
  timeout 600 mpirun --oversubscribe -np "$np" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE \
    $BIN train --data data/kjv --eval-every 0 --eval-batches 4 --out "$OUT/$name" --log "$OUT/$name.jsonl" "$@" \
    > "$OUT/$name.out" 2>&1 || { echo "mpi-checks: $name (np=$np) exited non-zero:" >&2; cat "$OUT/$name.out" >&2; fail=1; }
}
losses() { grep '"type":"step"' "$1" | sed -n 's/.*"loss":\([-0-9.eE+]*\).*/\1/p'; }
same_losses() {  # name-a, name-b: equal per-step losses (relative difference <= 1e-5)
  local a b
  a=$(losses "$OUT/$1.jsonl" 2>/dev/null || true); b=$(losses "$OUT/$2.jsonl" 2>/dev/null || true)
  if [ -z "$a" ] || [ "$(echo "$a" | wc -l)" != "$(echo "$b" | wc -l)" ]; then
    echo "mpi-checks: FAIL $1 vs $2: different step counts" >&2; fail=1; return
  fi
  if paste <(echo "$a") <(echo "$b") | awk '{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1;
        if (d > 1e-5 * m) { print "step " NR ": " $1 " vs " $2; bad = 1 } } END { exit bad }' >&2; then
    echo "mpi-checks: ok   $1 = $2 ($(echo "$a" | wc -l) steps, last loss $(echo "$a" | tail -1))"
  else
    echo "mpi-checks: FAIL $1 vs $2: losses differ" >&2; fail=1
  fi
}
expect_error() {  # name, expected text, np, train flags...: must exit non-zero within 60 s, naming the problem
  local name=$1 text=$2 np=$3; shift 3
  local t0=$SECONDS rc=0
  timeout 60 mpirun --oversubscribe -np "$np" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE \
    $BIN train --data data/kjv --out "$OUT/$name" "$@" > "$OUT/$name.out" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q -- "$text" "$OUT/$name.out"; then
    echo "mpi-checks: ok   $name: exit $rc in $((SECONDS - t0)) s: $(grep -m1 -- "$text" "$OUT/$name.out")"
  else
    echo "mpi-checks: FAIL $name: exit $rc (124 = hung), expected an error containing '$text':" >&2
    cat "$OUT/$name.out" >&2; fail=1
  fi
}

common=(--preset small --steps 6 --batch-size 2 --microbatches 4)
run 1 np1 "${common[@]}"
run 4 np4-1f1b "${common[@]}" --schedule 1f1b
run 4 np4-gpipe "${common[@]}" --schedule gpipe
run 3 np3-uneven "${common[@]}" --split 4,1,3
same_losses np1 np4-1f1b
same_losses np1 np4-gpipe
same_losses np1 np3-uneven

expect_error too-many-stages "stages for 2 layers" 4 --preset tiny --steps 2
expect_error split-mismatch "give one layer count per rank" 2 --split 4,2,2 --steps 2
expect_error split-coverage "split" 2 --split 4,3 --steps 2
expect_error missing-data "data/nowhere" 4 --data data/nowhere --steps 2
exit $fail
