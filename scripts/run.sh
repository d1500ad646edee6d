#!/usr/bin/env bash
# The main job on a fresh machine: install, build, prepare the KJV data, train an 8-stage
# pipeline (one MPI rank per stage) and print a sample. Extra arguments go to
# `protomodel train` (e.g. --steps 100 --codec subspace).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
swift build -c release --product protomodel
bin=.build/release/protomodel
[ -s data/kjv/tokenizer.json ] || $bin prepare --input data/kjv.txt --out data/kjv
ranks=${RANKS:-8}
# --oversubscribe: more ranks than cores is fine (ranks yield when idle).
mpirun --oversubscribe -np "$ranks" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE \
  $bin train --data data/kjv --microbatches 8 --batch-size 4 --out runs/latest --log runs/latest/train.jsonl "$@"
$bin sample --run runs/latest --prompt "And God said" --tokens 200
