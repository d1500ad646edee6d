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

launch() {
  case "$LAUNCHER" in
    srun)   srun --mpi=pmix --kill-on-bad-exit=1 "$BIN" "$@" ;;
    mpirun) mpirun --oversubscribe -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE "$BIN" "$@" ;;
    *) echo "job: LAUNCHER=$LAUNCHER; use srun or mpirun" >&2; exit 2 ;;
  esac
}
echo "job ${SLURM_JOB_ID:-local}: $SLURM_NTASKS ranks on ${SLURM_JOB_NODELIST:-?} via $LAUNCHER, output in $RUN_DIR"
