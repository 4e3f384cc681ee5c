#!/usr/bin/env bash
# Runs the whole test suite: a Release build, then the same tests built with AddressSanitizer and
# UndefinedBehaviorSanitizer. GPU suites run where a CUDA device is present and report SKIP
# elsewhere. Usage: scripts/test.sh   (env: FOPT_SKIP_SANITIZERS=1 to run the Release build only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
# Idle OpenMP threads sleep instead of spinning: the suite runs several tests at once on few cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
echo "== tests (Release) =="
# --verbose lists every test, so a GPU suite shows as SKIP (not PASS) on a machine without a GPU.
./build/tests/fusedopt_tests -j"$jobs" --verbose

# ZeRO-1 (docs/ZERO.md): zero1_mpi under mpirun -np 1/2/3, zero1_nccl, shard suites on the emulated device
bash scripts/zero1_check.sh build

echo "== install, then use it from another project (CMake find_package and pkg-config) =="
prefix="$PWD/build/_install"
rm -rf "$prefix" build/_consumer
cmake --install build --prefix "$prefix" >/dev/null
cmake -S examples -B build/_consumer -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build/_consumer -j "$jobs" >/dev/null
./build/_consumer/cpu_linear_regression | tail -n 1
./build/_consumer/gpu_training_loop
pc_flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs fusedopt)
cc -std=c11 examples/cpu_linear_regression.c $pc_flags -lm -o build/_consumer/pc_example
LD_LIBRARY_PATH="$prefix/lib" ./build/_consumer/pc_example | tail -n 1
echo "install: find_package(fusedopt) and pkg-config consumers built and ran"

if [ "${FOPT_SKIP_SANITIZERS:-0}" != 1 ]; then
  cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DFOPT_SANITIZE=ON -DFOPT_BUILD_BENCH=OFF \
        -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build build-san -j "$jobs"
  echo "== tests (ASan + UBSan) =="
  # The CUDA runtime maps memory where ASan keeps its shadow gap; leave that gap unprotected.
  ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ./build-san/tests/fusedopt_tests -j"$jobs"
fi
