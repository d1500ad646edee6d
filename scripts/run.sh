#!/usr/bin/env bash
# The main job on a fresh machine: install, build, prepare the KJV data, train, sample.
# Extra arguments go to `protomodel train` (e.g. --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
swift build -c release --product protomodel
bin=.build/release/protomodel
[ -s data/kjv/tokenizer.json ] || $bin prepare --input data/kjv.txt --out data/kjv
threads=$(nproc)
$bin train --data data/kjv --threads "$threads" --out runs/latest --log runs/latest/train.jsonl "$@"
$bin sample --run runs/latest --prompt "And God said" --tokens 200
