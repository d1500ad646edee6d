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
wait_state() {  # job id, states to wait for (regex), seconds
  local s=""
  for _ in $(seq 1 "$3"); do
    s=$(scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    if echo "$s" | grep -qE "^($2)$"; then echo "$s"; return 0; fi
    sleep 1
  done
  echo "$s"
}
flags=(--steps 3 --eval-every 0 --eval-batches 8)
LAUNCHER=srun submit single-srun --ntasks=4 jobs/train_single_node.sbatch "${flags[@]}"
LAUNCHER=mpirun submit multi-mpirun --nodes=1 --ntasks-per-node=2 jobs/train_multi_node.sbatch "${flags[@]}"
# The node has 2 CPUs and Slurm refuses more tasks per node than CPUs: 2 replicas of a
# 1-stage pipeline (mpi_checks.sh runs 2 × 2, 2 × 3 and 8 × 2 under mpirun).
STAGES=1 LAUNCHER=srun submit replicas --nodes=1 --ntasks-per-node=2 jobs/train_replicas.sbatch "${flags[@]}"

# The benchmark script: a tiny comparison must write its table.
out=runs/slurm-test-bench
rm -rf "$out"; mkdir -p "$out"
jid=$(RUN_DIR=$out STEPS=4 CODECS=dense,subspace:16 LINKS=off,80mbit sbatch --parsable --export=ALL --ntasks=2 \
      --output="$out/slurm.out" jobs/bench.sbatch --eval-every 2 --eval-batches 8)
state=$(wait_state "$jid" "COMPLETED|FAILED|CANCELLED|TIMEOUT" 600)
if [ "$state" = COMPLETED ] && grep -q "| subspace k=16 | 80mbit |" "$out/bench/results.md" 2>/dev/null && [ -s "$out/bench/steptime_vs_bandwidth_0ms.svg" ]; then
  echo "slurm-test: bench ok (results.md and plots written)"
else
  echo "slurm-test: bench FAILED (state $state); output:" >&2; cat "$out/slurm.out" >&2 || true; fail=1
fi

# Requeue on the time-limit warning, with each launcher: USR1 to the batch script (what
# `--signal=B:USR1@120` delivers) → forwarded to the ranks → checkpoint, exit 75, requeue, resume.
for launcher in srun mpirun; do
  out=runs/slurm-test-requeue-$launcher
  rm -rf "$out"; mkdir -p "$out"
  jid=$(LAUNCHER=$launcher RUN_DIR=$out CHECKPOINT_EVERY=1000 sbatch --parsable --export=ALL --ntasks=2 --output="$out/slurm.out" \
        jobs/train_requeue.sbatch --steps 60 --eval-every 0 --eval-batches 8)
  echo "slurm-test: requeue ($launcher) submitted as job $jid"
  wait_state "$jid" RUNNING 120 >/dev/null
  for _ in $(seq 1 120); do grep -q '"type":"step"' "$out/train.jsonl" 2>/dev/null && break; sleep 1; done
  scancel --batch --signal=USR1 "$jid"
  state=$(wait_state "$jid" "COMPLETED|FAILED|CANCELLED|TIMEOUT" 600)
  restarts=$(scontrol show job "$jid" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
  resumed=$(grep -c '"type":"resume"' "$out/train.jsonl" 2>/dev/null || true)
  last=$(grep '"type":"step"' "$out/train.jsonl" | tail -1 | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
  if [ "$state" = COMPLETED ] && [ "${restarts:-0}" -ge 1 ] && [ "${resumed:-0}" -ge 1 ] && [ "$last" = 60 ]; then
    echo "slurm-test: requeue ($launcher) ok (signal → checkpoint → requeue → resumed, $restarts restart(s), finished step $last)"
  else
    echo "slurm-test: requeue ($launcher) FAILED (state $state, restarts $restarts, resumed $resumed, last step $last); output:" >&2
    cat "$out/slurm.out" >&2 || true
    fail=1
  fi
done
exit $fail
