#!/usr/bin/env bash
# Runs the whole test suite in four builds (docs/TESTING.md says more):
#
#   release  build/          Release, CUDA backend, device code for sm_80 and sm_90. Every suite;
#                            the gpu* suites run on a CUDA device and report SKIP without one.
#                            Then: install + find_package/pkg-config consumers, and the SASS check
#                            of build/libfusedopt.so (scripts/sass_check.sh).
#   emu      build-emu/      Release, emulated device (-DFOPT_DEVICE_EMULATION=ON: the GPU object,
#                            its kernels and the GPU suites run on the CPU; no device code). Every
#                            suite, and no gpu* test may SKIP. Then the examples run on it.
#   san      build-emu-san/  Debug (-O1), emulated device, AddressSanitizer + UndefinedBehaviorSanitizer
#                            with leak checks: every suite again, the GPU object included; no gpu*
#                            test may SKIP; random tensor lists of 300 tensors (FOPT_TEST_LIGHT=1).
#                            A sanitizer report anywhere in the log fails, also one that Criterion
#                            counts as a pass (a leak found when a test's process exits).
#   nocuda   build-nocuda/   Release without CUDA, configured and built with nvcc hidden (PATH
#                            without it, CUDACXX pointing nowhere): FOPT_CUDA must default to OFF
#                            on its own. The CPU suites and test_nocuda (GPU functions say
#                            NOT_SUPPORTED); the library must not need libcudart; install +
#                            find_package/pkg-config consumers of the CPU example.
#
# Usage: scripts/test.sh
#   env FOPT_TEST_BUILDS="release emu san nocuda"   which builds (default all four, in this order)
#       FOPT_SKIP_SANITIZERS=1               drop "san"
#       FOPT_SASS_CHECK=0                    skip the SASS check
#       FOPT_SASS_REQUIRED=1                 fail when the SASS tools cannot be had (default: say
#                                            so loudly and go on; violations always fail)
#       FOPT_PIP_CHECK=0                     skip scripts/pip_check.sh (pip install ./python in a
#                                            fresh venv; needs PyPI for scikit-build-core)
# Needs cmake, pkg-config, libcriterion-dev and the CUDA toolkit (FOPT_TEST_BUILDS=nocuda alone:
# no CUDA toolkit, FOPT_PIP_CHECK=0 too): scripts/deps.sh tests installs
# what is missing when run as root on Debian, and says what to install otherwise.
# Prints one line per Criterion suite (the full verbose log stays in DIR/tests.log). Ends with one
# line "tests: N passed, N failed, N skipped" over all builds, the Python tests, the ZeRO-1 MPI
# runs and the install check; exit status non-zero
# when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
# Idle OpenMP threads sleep instead of spinning: the suite runs several tests at once on few cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
command -v nvcc >/dev/null 2>&1 || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH=/usr/local/cuda/bin:$PATH

builds=${FOPT_TEST_BUILDS:-release emu san nocuda}
[ "${FOPT_SKIP_SANITIZERS:-0}" != 1 ] || builds=${builds//san/}
# only the build without CUDA: a machine without the CUDA toolkit will do
[ "$(echo $builds)" != nocuda ] || export FOPT_DEPS_NO_CUDA=1

bash scripts/deps.sh tests || { echo "test.sh: missing dependencies (above); nothing was tested" >&2; exit 1; }

t_start=$SECONDS
failures=()
summary=()
n_pass=0 n_fail=0 n_skip=0
stage_failures=0
fail() { failures+=("$1"); echo "test.sh: FAILED: $1" >&2; }
# a failed step that is not a test (build, install, SASS, examples): counted as one failure
fail_step() { stage_failures=$((stage_failures + 1)); fail "$1"; }
elapsed() { local s=$((SECONDS - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# configure_build NAME DIR CMAKE_ARGS...: configure and build; non-zero on failure (log shown)
configure_build() {
  local name=$1 dir=$2; shift 2
  local t0=$SECONDS
  echo "== $name: configure and build ($dir) =="
  mkdir -p "$dir"
  if ! cmake -S . -B "$dir" "$@" >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log"; fail_step "$name: configure"; return 1
  fi
  grep -A3 -i 'CMake Warning' "$dir/configure.log" || true
  if ! cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1; then
    grep -E -B2 -A8 'error|Error' "$dir/build.log" | head -80; fail_step "$name: build (log $dir/build.log)"; return 1
  fi
  grep -E 'warning:' "$dir/build.log" | sort -u | head -20 || true
  [ -x "$dir/tests/fusedopt_tests" ] || { fail_step "$name: no tests/fusedopt_tests (Criterion missing at configure?)"; return 1; }
  echo "$name: built in $(elapsed "$t0")"
}

# install_consumers DIR [VAR=value...]: cmake --install DIR into DIR/_install, then the examples
# built against it with find_package (cpu_linear_regression run, and gpu_training_loop when the
# install has CUDA) and cpu_linear_regression built against it through pkg-config, and run; the
# VAR=value pairs are the environment of the cmake calls. Non-zero on failure (DIR/_consumer.log).
install_consumers() {
  local dir=$1 prefix="$root/$1/_install" pc_flags
  shift
  rm -rf "$prefix" "$dir/_consumer"
  if env "$@" cmake --install "$dir" --prefix "$prefix" >/dev/null &&
     env "$@" cmake -S examples -B "$dir/_consumer" -DCMAKE_PREFIX_PATH="$prefix" \
       -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null 2>&1 &&
     env "$@" cmake --build "$dir/_consumer" -j "$jobs" >"$dir/_consumer.log" 2>&1 &&
     "./$dir/_consumer/cpu_linear_regression" | tail -n 1 &&
     { [ ! -e "$dir/_consumer/gpu_training_loop" ] || "./$dir/_consumer/gpu_training_loop"; } &&
     pc_flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs fusedopt) &&
     cc -std=c11 examples/cpu_linear_regression.c $pc_flags -lm -o "$dir/_consumer/pc_example" &&
     LD_LIBRARY_PATH="$prefix/lib" "./$dir/_consumer/pc_example" | tail -n 1; then
    return 0
  fi
  [ -f "$dir/_consumer.log" ] && tail -30 "$dir/_consumer.log"
  return 1
}

# suite_lines LOG: one line per Criterion suite of a verbose log (passed, failed, skipped), then
# each failing test with its assertion messages
suite_lines() {
  awk '/^\[(PASS|FAIL|SKIP)\] [A-Za-z0-9_]+::/ {
         split($2, a, "::"); s = a[1]; if (!(s in seen)) { seen[s] = 1; order[++n] = s }
         k = substr($1, 2, 4); c[s, k]++ }
       END { for (i = 1; i <= n; i++) { s = order[i]
               printf "  %-24s %4d passed, %d failed, %d skipped\n", s, c[s, "PASS"], c[s, "FAIL"], c[s, "SKIP"] } }' "$1"
  grep -a -E -A2 '^\[FAIL\]|Assertion Failed' "$1" | grep -a -v -E '^--$' | head -40
}

# run_suite NAME DIR NO_GPU_SKIP [env...]: the whole Criterion suite, verbose (every test listed, so
# a GPU suite shows SKIP rather than PASS); counts into the totals
run_suite() {
  local name=$1 dir=$2 no_gpu_skip=$3; shift 3
  local log=$dir/tests.log t0=$SECONDS rc
  echo "== $name: tests (every test's line in $log) =="
  env "$@" timeout 2400 "./$dir/tests/fusedopt_tests" -j"$jobs" --verbose >"$log" 2>&1
  rc=$?
  suite_lines "$log"
  local syn tested passing skipped
  syn=$(grep -a 'Synthesis: Tested:' "$log" | tail -1)
  tested=$(sed -n 's/.*Tested: \([0-9]*\).*/\1/p' <<<"$syn")
  passing=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$syn")
  skipped=$(grep -a -c '^\[SKIP\]' "$log")
  if [ -z "$syn" ]; then
    fail_step "$name: the test program ended without its summary (exit $rc)"
    summary+=("$name: tests CRASHED (exit $rc)")
    return
  fi
  n_pass=$((n_pass + passing)); n_fail=$((n_fail + tested - passing)); n_skip=$((n_skip + skipped))
  if [ "$tested" -ne "$passing" ]; then
    fail "$name: $((tested - passing)) of $tested tests failed"
  elif [ "$rc" -ne 0 ]; then
    fail_step "$name: the test program exited with $rc although its tests passed"
  fi
  # A leak or a sanitizer report at a test's exit is a "crash during teardown" that Criterion
  # counts as a pass: find them in the log.
  local reports
  reports=$(grep -a -c -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|crashed during its setup or teardown' "$log")
  if [ "$reports" -gt 0 ]; then
    grep -a -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|crashed during its setup or teardown' "$log" | head -20
    fail_step "$name: $reports sanitizer reports or crashes outside a test body (above)"
  fi
  local gpu_skips gpu_passes
  gpu_skips=$(grep -a -c -E '^\[SKIP\] gpu[A-Za-z0-9_]*::' "$log")
  gpu_passes=$(grep -a -c -E '^\[PASS\] gpu[A-Za-z0-9_]*::' "$log")
  if [ "$no_gpu_skip" = 1 ]; then
    if [ "$gpu_skips" -gt 0 ]; then
      grep -a -E '^\[SKIP\] gpu[A-Za-z0-9_]*::' "$log"
      fail_step "$name: $gpu_skips gpu* tests reported SKIP on the emulated device, where every one must run"
    fi
    [ "$gpu_passes" -gt 0 ] || fail_step "$name: no gpu* test passed on the emulated device"
  fi
  summary+=("$name: $passing/$tested passed, $skipped skipped ($gpu_passes gpu* passed, $gpu_skips gpu* skipped) in $(elapsed "$t0")")
}

for b in $builds; do
  case $b in
  release)
    if configure_build release build -DCMAKE_BUILD_TYPE=Release; then
      run_suite release build 0

      echo "== release: install, then use it from another project (CMake find_package and pkg-config) =="
      if install_consumers build; then
        echo "install: find_package(fusedopt) and pkg-config consumers built and ran"
        n_pass=$((n_pass + 1))
        summary+=("release: install + consumers OK")
      else
        fail_step "release: install/consumer check"
      fi

      echo "== release: ZeRO-1 examples (zero1_mpi under mpirun -np 1/2/3, zero1_nccl) =="
      if bash scripts/zero1_check.sh build >build/zero1_check.log 2>&1; then
        grep -a -E '^mpirun|^zero1' build/zero1_check.log | sed 's/^/  /'
        mpi_runs=$(grep -a -c '^mpirun -np' build/zero1_check.log)
        n_pass=$((n_pass + mpi_runs))
        summary+=("release: ZeRO-1 over MPI: $mpi_runs of 3 rank counts match one process (build/zero1_check.log)")
      else
        tail -n 30 build/zero1_check.log
        fail_step "release: ZeRO-1 examples (scripts/zero1_check.sh build; build/zero1_check.log)"
      fi

      if [ "${FOPT_SASS_CHECK:-1}" != 0 ]; then
        echo "== release: SASS check of build/libfusedopt.so =="
        # Only the tools' absence (no cuobjdump in the toolkit, PyPI unreachable) is forgiven;
        # a violation, a missing architecture or a missing kernel fails.
        if bash scripts/sass_check.sh --tools >build/sass-tools.log 2>&1; then
          bash scripts/sass_check.sh build/libfusedopt.so 2>&1 | tee build/sass_check.txt
          if [ "${PIPESTATUS[0]}" -eq 0 ]; then
            summary+=("release: SASS check OK: $(tail -n 1 build/sass_check.txt)")
          else
            fail_step "release: SASS check (scripts/sass_check.sh build/libfusedopt.so)"
          fi
        else
          cat build/sass-tools.log
          echo "test.sh: SASS CHECK NOT RUN: cuobjdump/nvdisasm are not in the CUDA toolkit and could not be installed from PyPI (above)"
          summary+=("release: SASS check NOT RUN (no cuobjdump/nvdisasm, PyPI unreachable)")
          [ "${FOPT_SASS_REQUIRED:-0}" != 1 ] || fail_step "release: SASS tools unavailable and FOPT_SASS_REQUIRED=1"
        fi
      fi
    fi
    ;;
  emu)
    if configure_build emu build-emu -DCMAKE_BUILD_TYPE=Release -DFOPT_DEVICE_EMULATION=ON \
         -DFOPT_BUILD_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90; then
      run_suite emu build-emu 1
      echo "== emu: examples on the emulated device =="
      if ./build-emu/examples/cpu_linear_regression | tail -n 1 &&
         ./build-emu/examples/gpu_training_loop &&
         ./build-emu/examples/gpu_amp_training &&
         ./build-emu/examples/digits_mlp_gpu /nonexistent.bin | tee build-emu/digits_mlp_gpu.log &&
         grep -q 'skipped: fusedopt is built with the emulated device' build-emu/digits_mlp_gpu.log; then
        summary+=("emu: examples OK (gpu_training_loop, gpu_amp_training on the emulated device; digits_mlp_gpu says it skips)")
      else
        fail_step "emu: examples"
      fi
      # The benchmark's correctness half: every GPU row of every storage mode, step_ex and graph
      # replay on the emulated device, against the CPU reference (timings flagged EMULATED).
      echo "== emu: fopt_bench --quick on the emulated device =="
      if ./build-emu/bench/fopt_bench --quick --no-cpu >build-emu/fopt_bench.txt 2>&1 &&
         grep -q '^correctness: .*: OK$' build-emu/fopt_bench.txt; then
        summary+=("emu: fopt_bench $(grep '^correctness: ' build-emu/fopt_bench.txt | sed 's/ against the CPU reference//')")
      else
        tail -n 30 build-emu/fopt_bench.txt
        fail_step "emu: fopt_bench on the emulated device (build-emu/fopt_bench.txt)"
      fi
    fi
    ;;
  san)
    # Debug at -O1 (what ASan's documentation recommends: -O0 makes the suite several times slower)
    if configure_build san build-emu-san -DCMAKE_BUILD_TYPE=Debug -DFOPT_SANITIZE=ON -DFOPT_DEVICE_EMULATION=ON \
         -DFOPT_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
         "-DCMAKE_C_FLAGS_DEBUG=-g -O1" "-DCMAKE_CUDA_FLAGS_DEBUG=-g -O1"; then
      # protect_shadow_gap=0: the CUDA runtime (linked, unused here) may map memory in ASan's gap.
      # FOPT_TEST_LIGHT=1: the random tensor lists hold 300 tensors instead of thousands (the
      # unsanitized builds run the full lists); unoptimised and sanitized, they would take minutes.
      run_suite san build-emu-san 1 ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 FOPT_TEST_LIGHT=1
    fi
    ;;
  nocuda)
    # CMake finds nvcc through PATH, CUDA_PATH and the system directories (/usr/local/bin too):
    # CUDACXX naming no file makes its check fail wherever nvcc is; -DFOPT_CUDA is not given.
    nocuda_path=$(tr ':' '\n' <<<"$PATH" | while read -r d; do [ -x "$d/nvcc" ] || printf '%s:' "$d"; done)
    if PATH="${nocuda_path%:}:$(dirname "$(command -v cmake)")" CUDACXX=/nonexistent/nvcc CUDA_PATH= \
         configure_build nocuda build-nocuda -DCMAKE_BUILD_TYPE=Release; then
      run_suite nocuda build-nocuda 0
      echo "== nocuda: FOPT_CUDA off by default, no libcudart, install + consumers =="
      if grep 'No CUDA compiler found: FOPT_CUDA defaults to OFF' build-nocuda/configure.log &&
         ! readelf -d build-nocuda/libfusedopt.so | grep -i cudart &&
         install_consumers build-nocuda PATH="${nocuda_path%:}:$(dirname "$(command -v cmake)")" \
           CUDACXX=/nonexistent/nvcc; then
        echo "nocuda: FOPT_CUDA defaulted to OFF, no libcudart; find_package and pkg-config consumers built and ran"
        n_pass=$((n_pass + 1))
        summary+=("nocuda: FOPT_CUDA defaulted to OFF without nvcc; no libcudart; install + consumers OK")
      else
        fail_step "nocuda: default, libcudart or install/consumer check"
      fi
    fi
    ;;
  *) fail_step "unknown build '$b' in FOPT_TEST_BUILDS (release emu san nocuda)" ;;
  esac
done

# The Python package (python/fusedopt) against the Release library, and its GPU code path against
# the emulated one when that was built; CUDA tests skip without a GPU.
if [ -f build/libfusedopt.so ] && [ "${FOPT_PYTEST:-1}" != 0 ]; then
  echo "== python: pytest python/tests =="
  if /usr/bin/python3 -c 'import torch, pytest' >/dev/null 2>&1; then
    t0=$SECONDS
    FUSEDOPT_LIB="$root/build/libfusedopt.so" FUSEDOPT_EMU_LIB="$root/build-emu/libfusedopt.so" \
      /usr/bin/python3 -m pytest python/tests -q -rfE -p no:cacheprovider >build/pytest.log 2>&1
    rc=$?
    # pytest's closing line, e.g. "3 failed, 150 passed, 19 skipped in 80.1s", into the totals
    line=$(grep -a -E '^=*.*[0-9]+ (passed|failed|error)' build/pytest.log | tail -1 | tr -d '=')
    for k in passed failed skipped error errors; do
      v=$(grep -o -E "[0-9]+ $k\b" <<<"$line" | cut -d' ' -f1)
      case $k in passed) n_pass=$((n_pass + ${v:-0})) ;; skipped) n_skip=$((n_skip + ${v:-0})) ;;
                 *) n_fail=$((n_fail + ${v:-0})) ;; esac
    done
    echo "  python: ${line:-no summary}"
    if [ "$rc" -eq 0 ]; then
      summary+=("python: ${line# } (build/pytest.log)")
    else
      grep -a -E '^(FAILED|ERROR) ' build/pytest.log | head -20
      fail "python: pytest python/tests exited $rc (build/pytest.log)"
      [ -n "$line" ] || stage_failures=$((stage_failures + 1))
    fi
  else
    echo "test.sh: no torch/pytest for /usr/bin/python3: the Python tests did not run (scripts/deps.sh pytest)"
    [ "${CI:-}" != true ] || fail_step "python: torch/pytest missing in CI"
  fi
fi

# The package as users install it: a fresh venv, pip install ./python (builds and bundles the
# library), python -m fusedopt and a CPU step outside the checkout (scripts/pip_check.sh).
if [ "${FOPT_PIP_CHECK:-1}" != 0 ]; then
  echo "== python: pip install ./python in a fresh venv (scripts/pip_check.sh) =="
  t0=$SECONDS
  if bash scripts/pip_check.sh; then
    n_pass=$((n_pass + 1))
    summary+=("python: pip install ./python in a fresh venv OK (bundled library loaded, CPU step) in $(elapsed "$t0")")
  else
    fail_step "python: pip install ./python (scripts/pip_check.sh; logs in build/pip_check)"
  fi
  echo "== python: pip install ./python with nvcc hidden (PIP_CHECK_NO_CUDA=1: the CPU-only library) =="
  t0=$SECONDS
  if PIP_CHECK_NO_CUDA=1 PIP_CHECK_DIR=build/pip_check_nocuda bash scripts/pip_check.sh; then
    n_pass=$((n_pass + 1))
    summary+=("python: pip install ./python without nvcc OK (CPU-only library, python -m fusedopt says so) in $(elapsed "$t0")")
  else
    fail_step "python: pip install ./python without nvcc (logs in build/pip_check_nocuda)"
  fi
fi

echo "== summary ($(elapsed "$t_start")) =="
for s in "${summary[@]}"; do echo "$s"; done
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "tests: $n_pass passed, $((n_fail + stage_failures)) failed, $n_skip skipped"
[ ${#failures[@]} -eq 0 ]
