# Sourced by the scripts: runtime environment for protomodel ranks on this machine.
# One BLAS thread per rank; AVX-512 kernels only where the CPU has AVX-512 (OpenBLAS 0.3.21
# does not recognise newer AVX-512 CPUs and would fall back to AVX2).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
# mpirun refuses root without these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
