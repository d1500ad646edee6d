#!/usr/bin/env bash
# Submits the job scripts in jobs/ to a local one-node Slurm (stood up by slurm_local.sh)
# with sbatch and checks that each trains and exits 0: the single-node script with
# `srun --mpi=pmix`, the multi-node script (shrunk to this one node) with mpirun.
# Needs the release build and data/kjv (scripts/test.sh provides both).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/slurm_local.sh
fail=0
submit() {  # name, sbatch args...
  local name=$1; shift
  local out=runs/slurm-test-$name
  rm -rf "$out"; mkdir -p "$out"
  local jid
  jid=$(RUN_DIR=$out sbatch --parsable --export=ALL --output="$out/slurm.out" "$@")
  echo "slurm-test: $name submitted as job $jid"
  local state=""
  for _ in $(seq 1 300); do
    state=$(scontrol show job "$jid" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case "$state" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") sleep 1 ;; *) break ;; esac
  done
  local code
  code=$(scontrol show job "$jid" | sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p')
  local steps
  steps=$(grep -c '"type":"step"' "$out/train.jsonl" 2>/dev/null || true)
  if [ "$state" = COMPLETED ] && [ "$code" = "0:0" ] && [ "${steps:-0}" -ge 3 ]; then
    echo "slurm-test: $name ok (state $state, exit $code, $steps steps logged)"
  else
    echo "slurm-test: $name FAILED (state $state, exit $code, ${steps:-0} steps logged); output:" >&2
    cat "$out/slurm.out" >&2 || true
    fail=1
  fi
}
flags=(--steps 3 --eval-every 0 --eval-batches 8)
LAUNCHER=srun submit single-srun --ntasks=4 jobs/train_single_node.sbatch "${flags[@]}"
LAUNCHER=mpirun submit multi-mpirun --nodes=1 --ntasks-per-node=2 jobs/train_multi_node.sbatch "${flags[@]}"
exit $fail
