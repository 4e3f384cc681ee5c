#!/usr/bin/env bash
# Runs the whole test suite: a Release build, then the same tests built with AddressSanitizer and
# UndefinedBehaviorSanitizer. GPU suites run where a CUDA device is present and report SKIP
# elsewhere. Usage: scripts/test.sh   (env: FOPT_SKIP_SANITIZERS=1 to run the Release build only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
echo "== tests (Release) =="
./build/tests/fusedopt_tests -j"$jobs"

if [ "${FOPT_SKIP_SANITIZERS:-0}" != 1 ]; then
  cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DFOPT_SANITIZE=ON -DFOPT_BUILD_BENCH=OFF \
        -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build build-san -j "$jobs"
  echo "== tests (ASan + UBSan) =="
  # The CUDA runtime maps memory where ASan keeps its shadow gap; leave that gap unprotected.
  ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ./build-san/tests/fusedopt_tests -j"$jobs"
fi
