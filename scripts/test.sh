#!/usr/bin/env bash
# Sets up a fresh machine and runs every test: XCTest on one rank, then the multi-rank
# checks under mpirun. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
swift build --build-tests
swift test 2>&1 | tee /tmp/protomodel-xctest.log
