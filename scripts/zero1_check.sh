#!/usr/bin/env bash
# The ZeRO-1 checks (docs/ZERO.md), called by scripts/test.sh after its Release build:
#   1. zero1_mpi built and run under mpirun with 1, 2 and 3 ranks: each must print "zero1: match"
#      (the sharded training bit-identical to one process);
#   2. zero1_nccl built (NCCL from the CUDA toolkit, Python's nvidia-nccl-cu13, or fetched from
#      PyPI by scripts/fetch_nccl.sh into BUILD/_deps/nccl when neither has it) and run: it
#      compares with the CPU reference on every local GPU, or says it skips without one;
# (The shard test suites run with the rest in test.sh's emulated builds, where shard_gpu runs too.)
#
#   scripts/zero1_check.sh [BUILD]      default BUILD=build
#
# Needs MPI (Debian: apt-get install libopenmpi-dev openmpi-bin; .ci/run installs it). Without it
# the MPI runs are skipped with a message, except under CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
jobs=$(nproc 2>/dev/null || echo 2)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
if ! grep -q '^NCCL_LIBRARY:FILEPATH=/' "$build/CMakeCache.txt"; then
  bash scripts/fetch_nccl.sh "$build/_deps/nccl"
  cmake -S . -B "$build" >/dev/null # cmake/FindNCCL.cmake looks in BUILD/_deps/nccl
fi
have_mpi=1
command -v mpicc >/dev/null && command -v mpirun >/dev/null || have_mpi=0
targets=(zero1_nccl)
[ "$have_mpi" = 1 ] && targets+=(zero1_mpi)
cmake --build "$build" -j "$jobs" --target "${targets[@]}"

echo "== ZeRO-1: zero1_mpi under mpirun =="
if [ "$have_mpi" = 1 ]; then
  for np in 1 2 3; do
    # --oversubscribe: more ranks than cores; each rank's fast CPU path on one thread
    if ! out=$(mpirun --allow-run-as-root --oversubscribe -x FOPT_NUM_THREADS=1 -np "$np" \
               "$build/examples/zero1_mpi" 2>&1) || ! grep -qx 'zero1: match' <<<"$out"; then
      echo "$out"
      echo "zero1_mpi -np $np: FAILED" >&2
      exit 1
    fi
    echo "mpirun -np $np zero1_mpi: $(grep -m1 'steps,' <<<"$out") / $(tail -n 1 <<<"$out")"
  done
elif [ "${CI:-}" = true ]; then
  echo "zero1: MPI is not installed (mpicc, mpirun); .ci/run should have installed it" >&2
  exit 1
else
  echo "zero1: MPI is not installed: zero1_mpi skipped (apt-get install libopenmpi-dev openmpi-bin)"
fi

echo "== ZeRO-1: zero1_nccl =="
"$build/examples/zero1_nccl" | tail -n 2
