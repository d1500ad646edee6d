#!/usr/bin/env bash
# The main job on a fresh machine: install, build, prepare the KJV data, then train the
# 8-stage pipeline (one MPI rank per stage) twice over an emulated consumer link (80 Mbit/s,
# 20 ms): uncompressed (dense) and with the compressed codec (CODEC, default the subspace
# k=16 with int8 coordinates and the two model levers). Prints the side-by-side table
# (`protomodel compare`: bytes/token, emulated step time, validation loss, emulated time to
# the same loss), writes the loss-vs-time plot and samples from the compressed model.
# Extra arguments go to both `protomodel train` runs (e.g. --steps 1000).
#   RANKS=4 scripts/run.sh          fewer stages
#   CODEC=int8 LINK=200mbit:50ms scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
swift build -c release --product protomodel
bin=.build/release/protomodel
[ -s data/kjv/tokenizer.json ] || $bin prepare --input data/kjv.txt --out data/kjv
ranks=${RANKS:-8}
codec=${CODEC:-subspace:16:int8+efixed=2+norm}
link=${LINK:-consumer}
out=runs/main
mkdir -p "$out"
train() {  # name, codec, extra flags...
  local name=$1 c=$2; shift 2
  # A rerun of this script replaces its own earlier runs (and nothing else).
  if [ -e "$out/$name" ] && [ ! -e "$out/$name/.made-by-run.sh" ]; then
    echo "run.sh: $out/$name exists and was not made by this script; move it away first" >&2; exit 1
  fi
  rm -rf "$out/$name"; mkdir -p "$out/$name"; touch "$out/$name/.made-by-run.sh"
  echo "== $name: --codec $c over --link $link, $ranks stages"
  # --oversubscribe: more ranks than cores is fine (ranks yield when idle).
  mpirun --oversubscribe -np "$ranks" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE \
    $bin train --data data/kjv --codec "$c" --link "$link" --microbatches 8 --batch-size 4 \
    --out "$out/$name" --log "$out/$name/train.jsonl" "$@"
}
train dense dense "$@"
train compressed "$codec" "$@"
echo "== dense vs $codec over $link"
$bin compare "$out/dense/train.jsonl" "$out/compressed/train.jsonl" --plot-out "$out"
command -v rsvg-convert >/dev/null && rsvg-convert "$out/loss_vs_time.svg" -o "$out/loss_vs_time.png" && echo "plot        $out/loss_vs_time.png"
echo "== sample from the compressed model"
$bin sample --run "$out/compressed" --prompt "And God said" --tokens 200
