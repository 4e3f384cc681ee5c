#!/usr/bin/env bash
# The one script for a borrowed GPU machine (H100 / H200): build for sm_90 with the ptxas report,
# the full test suite, compute-sanitizer memcheck, racecheck and synccheck on the GPU suites and
# memcheck on the GPU examples, the benchmark
# (every storage mode, step_ex, graphs), the PyTorch package's CUDA tests and comparison, the
# digits MLP on the GPU, the ZeRO-1 NCCL example, and the plot; a short summary printed last.
#
#   OUT=/some/dir scripts/gpu_check.sh        default OUT=build/gpu-check
#
# Criterion is not part of the GPU machine's image. Before borrowing, run here, once:
#   scripts/gpu_check.sh --prepare-deps       copies Criterion's headers and libraries into .deps/
#                                             (ignored through .git/info/exclude)
# and name ".deps" in the device call's carry list. Without it the tests are reported SKIPPED.
#
# $OUT gets at most 8 files:
#   summary.txt             nvidia-smi, ptxas registers/spills per kernel, step status, summary
#   build.log               configure and build output with the ptxas -v report
#   tests.log               the full Criterion suite
#   sanitizer.log           compute-sanitizer memcheck, racecheck and synccheck on the gpu* suites,
#                           then memcheck on the GPU examples
#   bench_<date>_<gpu>.txt  the tables of fopt_bench and torch_compare.py, the pytest summary, the
#                           digits GPU run and the NCCL example
#   bench_<date>_<gpu>.csv  fopt_bench results      torch_<date>_<gpu>.csv  PyTorch comparison
#   bench_<date>_<gpu>.png  the plot of both CSVs
# Copy the CSVs and the PNG into bench/results/ to commit them.
#
# Time: FOPT_GPU_CHECK_BUDGET seconds in all (default 500, under 9 minutes); each step gets a
# limit out of what is left, keeping a reserve for the steps after it. A failed or timed-out step
# does not stop the later ones; the summary says what failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ "${1:-}" = "--prepare-deps" ]; then
  set -e
  crit_so=$(ls /usr/lib/x86_64-linux-gnu/libcriterion.so.3* /usr/local/lib/libcriterion.so.3* 2>/dev/null | head -1 || true)
  crit_inc=$(ls -d /usr/include/criterion /usr/local/include/criterion 2>/dev/null | head -1 || true)
  [ -n "$crit_so" ] && [ -n "$crit_inc" ] || { echo "no Criterion here to copy" >&2; exit 1; }
  rm -rf .deps/criterion
  mkdir -p .deps/criterion/include .deps/criterion/lib
  cp -r "$crit_inc" .deps/criterion/include/
  cp -L "$crit_so" .deps/criterion/lib/libcriterion.so.3
  ln -sf libcriterion.so.3 .deps/criterion/lib/libcriterion.so
  # its libraries, less the C library's own (found through DT_RPATH, so also for libcriterion's
  # dependencies: the executable is linked with --disable-new-dtags)
  ldd "$crit_so" | awk '/=> \//{print $3}' |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" .deps/criterion/lib/; done
  grep -qx '/.deps/' .git/info/exclude 2>/dev/null || echo '/.deps/' >>.git/info/exclude
  du -sh .deps/criterion
  echo "done: name \".deps\" in the device call's carry list"
  exit 0
fi

export PYTHONUNBUFFERED=1
build=${FOPT_GPU_CHECK_BUILD:-build-gpu}  # build directory
OUT=${OUT:-build/gpu-check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
budget=${FOPT_GPU_CHECK_BUDGET:-500}
start=$(date +%s)
deadline=$((start + budget))
jobs=$(nproc 2>/dev/null || echo 8)
summary="$OUT/summary.txt"
: >"$summary"

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
[ -n "$gpu" ] || gpu=nogpu
tag="$(date +%Y%m%d)_$(echo "$gpu" | tr -c 'A-Za-z0-9.\n-' '_' | tr -s '_' | sed 's/_$//')"
bench_txt="$OUT/bench_$tag.txt"
bench_csv="$OUT/bench_$tag.csv"
torch_csv="$OUT/torch_$tag.csv"
png="$OUT/bench_$tag.png"

step_names=()
step_results=()
LIMIT=0
# plan CAP RESERVE: LIMIT = seconds this step may take (its cap, less the reserve for later steps)
plan() {
  local left=$((deadline - $(date +%s) - $2))
  LIMIT=$(($1 < left ? $1 : left))
}
# run_step NAME LOG CMD...: runs CMD with the planned limit, appending to LOG; records the result
run_step() {
  local name=$1 log=$2; shift 2
  if [ "$LIMIT" -lt 5 ]; then
    step_names+=("$name"); step_results+=("SKIPPED (time budget spent)")
    echo "== $name: SKIPPED (time budget spent)"
    return 1
  fi
  echo "== $name (limit ${LIMIT}s)" | tee -a "$log" >/dev/null
  echo "== $name (limit ${LIMIT}s) ..."
  local t0 rc
  t0=$(date +%s)
  if declare -F "$1" >/dev/null; then
    "$@" >>"$log" 2>&1  # a function of this script: it applies $LIMIT to its own commands
  else
    timeout -k 10 "$LIMIT" "$@" >>"$log" 2>&1
  fi
  rc=$?
  local dt=$(($(date +%s) - t0)) res
  case $rc in
    0) res="OK (${dt}s)" ;;
    124|137) res="TIMEOUT after ${dt}s" ;;
    *) res="FAILED, exit $rc (${dt}s)" ;;
  esac
  step_names+=("$name"); step_results+=("$res")
  echo "   $name: $res"
  return $rc
}
# compute-sanitizer memcheck over the GPU examples (each within the step's limit)
sanitize_examples() {
  local ex rc=0
  for ex in gpu_training_loop gpu_amp_training; do
    [ -x "$build/examples/$ex" ] || { echo "$ex: not built"; rc=1; continue; }
    echo "== memcheck $ex"
    timeout -k 10 "$LIMIT" "$sanitizer" --tool memcheck --error-exitcode 3 "$build/examples/$ex" || rc=1
  done
  return $rc
}
skip_step() {
  step_names+=("$1"); step_results+=("SKIPPED ($2)")
  echo "== $1: SKIPPED ($2)"
}

{
  echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  nvidia-smi 2>&1 || echo "nvidia-smi failed"
  echo
  nvcc --version 2>&1 | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1
  echo
} >>"$summary"

# ---- build ----
crit_args=()
have_tests=1
if [ "${FOPT_CRITERION_FROM_DEPS:-0}" != 1 ] &&
   { [ -f /usr/include/criterion/criterion.h ] || [ -f /usr/local/include/criterion/criterion.h ]; }; then
  :
elif [ -f .deps/criterion/lib/libcriterion.so ]; then
  dl="$root/.deps/criterion/lib"
  crit_args=(-DCRITERION_LIBRARY="$dl/libcriterion.so" -DCRITERION_INCLUDE_DIR="$root/.deps/criterion/include"
             "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -Wl,-rpath-link,$dl -Wl,-rpath,$dl")
else
  crit_args=(-DFOPT_BUILD_TESTS=OFF)
  have_tests=0
fi
build() {
  timeout -k 10 "$LIMIT" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DFOPT_PTXAS_VERBOSE=ON "${crit_args[@]}" &&
  timeout -k 10 "$LIMIT" cmake --build "$build" -j "$jobs"
}
plan 240 330
run_step build "$OUT/build.log" build

# ptxas report: one row per kernel: registers, stack frame, spill stores/loads
{
  echo "ptxas (sm_90) per kernel: registers, stack bytes, spill store/load bytes"
  awk '
    /Function properties for/ { fn = $NF }
    /bytes stack frame/ { stack = $1; st = $5; ld = $9 }
    /Compiling entry function/ { entry = $7; gsub(/\047/, "", entry) }
    /Used [0-9]+ registers/ {
      for (i = 1; i <= NF; i++) if ($i == "Used") regs = $(i + 1)
      name = fn != "" ? fn : entry
      if (!(name in seen)) { seen[name] = 1; printf "%5s regs %5s stack %5s/%-5s spill  %s\n", regs, stack, st, ld, name }
      if (st + 0 > 0 || ld + 0 > 0) spills++
      fn = ""; stack = st = ld = "?"
    }
    END {
      if (length(seen) == 0) print "kernels with spills: n/a (no ptxas report: nothing was recompiled)"
      else printf "kernels with spills: %d of %d\n", spills + 0, length(seen)
    }' "$OUT/build.log" |
    { if command -v c++filt >/dev/null; then c++filt; else cat; fi; } | cut -c1-160
} >"$OUT/ptxas.tmp" 2>&1
cat "$OUT/ptxas.tmp" >>"$summary"
ptxas_line=$(grep -h "kernels with spills" "$OUT/ptxas.tmp" | tail -1)
rm -f "$OUT/ptxas.tmp"

# ---- tests and sanitizers ----
tests=./$build/tests/fusedopt_tests
if [ "$have_tests" = 0 ]; then
  skip_step tests "no Criterion: run --prepare-deps here and carry .deps"
  skip_step memcheck "no Criterion"
  skip_step racecheck "no Criterion"
elif [ ! -x "$tests" ]; then
  skip_step tests "not built"; skip_step memcheck "not built"; skip_step racecheck "not built"
else
  # the device suites first (what only this machine can run), then everything else
  plan 70 330
  run_step tests_gpu "$OUT/tests.log" "$tests" --jobs "$jobs" --filter '@(gpu|shard_gpu|faults|fuzz)*/*'
  plan 60 280
  run_step tests "$OUT/tests.log" "$tests" --jobs "$jobs" --filter '!(@(gpu|shard_gpu|faults|fuzz)*/*)'
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
               /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
  if [ -n "$sanitizer" ]; then
    plan 45 240
    # FOPT_TEST_LIGHT: the random tensor lists shrink to 300 tensors under the sanitizers
    run_step memcheck "$OUT/sanitizer.log" env FOPT_TEST_LIGHT=1 "$sanitizer" --tool memcheck --target-processes all \
      --error-exitcode 3 "$tests" --filter 'gpu*/*' --jobs 1
    plan 40 210
    run_step racecheck "$OUT/sanitizer.log" env FOPT_TEST_LIGHT=1 "$sanitizer" --tool racecheck --target-processes all \
      --error-exitcode 3 "$tests" --filter 'gpu*/*' --jobs 1
    plan 35 180
    run_step synccheck "$OUT/sanitizer.log" env FOPT_TEST_LIGHT=1 "$sanitizer" --tool synccheck --target-processes all \
      --error-exitcode 3 "$tests" --filter 'gpu*/*' --jobs 1
    plan 30 150
    run_step memcheck_examples "$OUT/sanitizer.log" sanitize_examples
  else
    skip_step memcheck "no compute-sanitizer"; skip_step racecheck "no compute-sanitizer"
    skip_step synccheck "no compute-sanitizer"; skip_step memcheck_examples "no compute-sanitizer"
  fi
fi

# ---- benchmark, PyTorch comparison, plot ----
if [ -x "$build"/bench/fopt_bench ]; then
  plan 110 100
  run_step fopt_bench "$bench_txt" ./"$build"/bench/fopt_bench --quick --csv "$bench_csv" \
    --time-budget $((LIMIT > 60 ? LIMIT - 30 : 20))
else
  skip_step fopt_bench "not built"
fi
if [ -f "$build"/libfusedopt.so ]; then
  plan 50 70
  run_step torch_compare "$bench_txt" env FUSEDOPT_LIB="$root/$build/libfusedopt.so" python3 bench/torch_compare.py \
    "$build"/libfusedopt.so --csv "$torch_csv" --cpu-scale 0.1 --time-budget $((LIMIT > 50 ? LIMIT - 30 : 10))
  # the package's CUDA tests (python/tests/test_cuda.py; the rest runs on the CPU)
  if python3 -c 'import pytest, torch' >/dev/null 2>&1; then
    plan 40 40
    run_step pytest_cuda "$bench_txt" env FUSEDOPT_LIB="$root/$build/libfusedopt.so" PYTHONPATH="$root/python" \
      timeout -k 5 "$LIMIT" python3 -m pytest python/tests/test_cuda.py -q -rsx -p no:cacheprovider
  else
    skip_step pytest_cuda "no pytest or torch for $(command -v python3)"
  fi
else
  skip_step torch_compare "libfusedopt.so not built"
  skip_step pytest_cuda "libfusedopt.so not built"
fi
# the digits MLP trained on the GPU (cuBLAS + fusedopt) beside the CPU run, and ZeRO-1 over NCCL
if [ -x "$build"/examples/digits_mlp_gpu ]; then
  plan 25 25
  run_step digits_gpu "$bench_txt" bash scripts/train_digits.sh "$build"
else
  skip_step digits_gpu "not built"
fi
if [ -x "$build"/examples/zero1_nccl ]; then
  plan 15 15
  run_step zero1_nccl "$bench_txt" ./"$build"/examples/zero1_nccl
else
  skip_step zero1_nccl "not built (no NCCL found at configure)"
fi
plot_in=()
for f in "$bench_csv" "$torch_csv"; do [ -s "$f" ] && plot_in+=("$f"); done
py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import matplotlib' >/dev/null 2>&1; then py=$p; break; fi
done
if [ -z "$py" ]; then
  skip_step plot "no python3 with matplotlib"
elif [ ${#plot_in[@]} -gt 0 ]; then
  plan 15 0
  run_step plot "$bench_txt" "$py" bench/plot.py "${plot_in[@]}" -o "$png" \
    --title "fusedopt step throughput per storage mode - $gpu"
else
  skip_step plot "no CSV"
fi

# ---- summary (printed last; the device tool returns only the end of the output) ----
{
  echo
  echo "================ gpu_check summary: $gpu, $(( $(date +%s) - start ))s of ${budget}s ================"
  for i in "${!step_names[@]}"; do printf "  %-14s %s\n" "${step_names[$i]}" "${step_results[$i]}"; done
  echo "  ptxas: ${ptxas_line:-no report (build failed?)}"
  [ -f "$OUT/tests.log" ] && grep -h -E "Synthesis|Tested:" "$OUT/tests.log" | tail -1 | sed 's/^/  tests: /'
  [ -f "$OUT/tests.log" ] && grep -h -E "\[FAIL\]|\[----\].*(fail|crash|Assertion)" "$OUT/tests.log" | head -8 | sed 's/^/    /'
  [ -f "$OUT/sanitizer.log" ] && grep -h -E "^== (memcheck|racecheck|synccheck)|ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.log" |
    sort | uniq -c | head -8 | sed 's/^/  sanitizer: /'
  if [ -f "$bench_txt" ]; then
    echo "  fopt_bench (fused rows of Adam, and the header):"
    grep -h -E "^(GPU|copy bandwidth):" "$bench_txt" | head -2 | sed 's/^/    /'
    grep -h -E "^optimizer " "$bench_txt" | head -1 | cut -c1-150 | sed 's/^/    /'
    grep -h -E "^adam +plain +(fused|unfused_cublas) +fp32 " "$bench_txt" | cut -c1-170 | sed 's/^/    /'
    grep -h -E "^adam +plain +(fused_ex|fused_graph) " "$bench_txt" | cut -c1-170 | sed 's/^/    /'
    sed -n '/^== summary/,/^CSV/p' "$bench_txt" | sed 's/^/    /'
    echo "  torch_compare:"
    grep -h -E "^adam +plain +(fused_ctypes|torch_)" "$bench_txt" | cut -c1-140 | sed 's/^/    /' | tail -20
    sed -n '/^== torch_compare summary/,$p' "$bench_txt" | head -12 | sed 's/^/    /'
    grep -h -E "passed|failed|^digits:|^zero1:" "$bench_txt" | tail -8 | sed 's/^/    /'
  fi
  echo "  files in $OUT:"
  ls -1 "$OUT" | sed 's/^/    /'
} >>"$summary" 2>&1
sed -n '/^================ gpu_check summary/,$p' "$summary"
