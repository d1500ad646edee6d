# Sourced by the job scripts in jobs/: finds the checkout, checks the build, and defines
# `launch`, which starts one protomodel rank per Slurm task with the launcher chosen by
# LAUNCHER (srun: `srun --mpi=pmix`, the default; mpirun: OpenMPI's mpirun, which reads
# the allocation from Slurm). The two are alternatives, never nested.
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
if [ ! -f Package.swift ] || [ ! -d Sources/protomodel ]; then
  echo "job: submit from the protomodel checkout (cd protomodel && sbatch jobs/...)" >&2; exit 2
fi
source scripts/env.sh
BIN=${BIN:-.build/release/protomodel}
if [ ! -x "$BIN" ]; then
  echo "job: $BIN is missing; build it first on a node that shares this folder: swift build -c release" >&2; exit 2
fi
LAUNCHER=${LAUNCHER:-srun}
RUN_DIR=${RUN_DIR:-runs/slurm-${SLURM_JOB_ID:-local}}
mkdir -p "$RUN_DIR"

# The launcher command line for LAUNCHER, in the array CMD.
launcher_cmd() {
  case "$LAUNCHER" in
    srun)   CMD=(srun --mpi=pmix --kill-on-bad-exit=1 "$BIN") ;;
    mpirun) CMD=(mpirun --oversubscribe -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE "$BIN") ;;
    *) echo "job: LAUNCHER=$LAUNCHER; use srun or mpirun" >&2; exit 2 ;;
  esac
}
launch() { launcher_cmd; "${CMD[@]}" "$@"; }

# Runs `launch` in the background and forwards SIGUSR1 and SIGTERM from this batch script
# to it (srun and mpirun both pass them on to every rank); sets rc to its exit status.
launch_forwarding_signals() {
  launcher_cmd
  "${CMD[@]}" "$@" &   # a simple command: $! is the launcher itself, not a subshell
  local pid=$!
  trap 'echo "job: forwarding SIGUSR1 to the ranks"; kill -USR1 '"$pid"' 2>/dev/null || true' USR1
  trap 'echo "job: forwarding SIGTERM to the ranks"; kill -TERM '"$pid"' 2>/dev/null || true' TERM
  rc=0
  # `wait` returns early (status > 128) when a trapped signal arrives: wait again until the launcher is gone.
  while true; do
    wait "$pid" && rc=0 || rc=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - USR1 TERM
}
echo "job ${SLURM_JOB_ID:-local}: $SLURM_NTASKS ranks on ${SLURM_JOB_NODELIST:-?} via $LAUNCHER, output in $RUN_DIR"
