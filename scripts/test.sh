#!/usr/bin/env bash
# Sets up a fresh machine and runs every test: XCTest on one rank, then the multi-rank
# checks under mpirun, then the Slurm job scripts under sbatch on a local one-node
# cluster. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
echo "== XCTest (one rank)"
swift build --build-tests
swift test 2>&1 | tee /tmp/protomodel-xctest.log
echo "== release build and default data"
swift build -c release --product protomodel
[ -s data/kjv/tokenizer.json ] || .build/release/protomodel prepare --input data/kjv.txt --out data/kjv
echo "== multi-rank checks under mpirun"
scripts/mpi_checks.sh
echo "== models out: Hugging Face export checked with transformers (skipped if it cannot be installed)"
scripts/hf_check.sh
echo "== Slurm job scripts under sbatch"
scripts/slurm_test.sh
echo "== all tests passed"
