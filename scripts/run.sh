#!/usr/bin/env bash
# fusedopt's main job: build (Release, build/) if needed, benchmark every optimizer - fused GPU
# kernels, the unfused cuBLAS baseline, the fast CPU path and the CPU reference - and check every
# implementation against the CPU reference. Works with or without a GPU: without one, the GPU rows
# are skipped (said so clearly) and the CPU paths still run.
#
#   scripts/run.sh [--out DIR] [--quick] [-- more fopt_bench options]
#   (env FOPT_BUILD_DIR: build directory, default build)
#
# Writes into DIR (default build/bench-results/, outside the tracked tree):
#   bench_<date>_<device>.csv  .txt (the table)  .png (the plot, when matplotlib is there)
#   cpu_bench.csv / cpu_bench.txt                (when fopt_cpu_bench was built)
# Exit status: non-zero when the build or the benchmark fails, or when an implementation differs
# from the reference by more than 1e-4 (relative to the tensor's largest magnitude) or gives NaN.
set -uo pipefail
cd "$(dirname "$0")/.."

out=build/bench-results
bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --quick) bench_args+=(--quick); shift ;;
    --) shift; bench_args+=("$@"); break ;;
    -h|--help) sed -n "2,17p" "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
jobs=$(nproc 2>/dev/null || echo 2)
build=${FOPT_BUILD_DIR:-build}  # build directory (Release)

echo "== build (Release, $build/) =="
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || { echo "run.sh: configure failed" >&2; exit 1; }
fi
cmake --build "$build" -j "$jobs" >"$build/run-build.log" 2>&1 || {
  tail -40 "$build/run-build.log"; echo "run.sh: build failed ($build/run-build.log)" >&2; exit 1; }
[ -x "$build/bench/fopt_bench" ] || { echo "run.sh: $build/bench/fopt_bench was not built" >&2; exit 1; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  echo "GPU found: $device - GPU and CPU paths are measured"
else
  device=cpu
  echo "No GPU on this machine: the GPU rows (fused, unfused_cublas) are SKIPPED; only the CPU"
  echo "paths (cpu, cpu_ref) are measured. Run scripts/gpu_check.sh on a GPU machine for those."
fi
tag="$(date +%Y%m%d)_$(echo "$device" | tr -c 'A-Za-z0-9.\n-' '_' | tr -s '_')"
mkdir -p "$out"
csv="$out/bench_$tag.csv"

echo "== fopt_bench -> $csv =="
"$build/bench/fopt_bench" --csv "$csv" "${bench_args[@]}" | tee "$out/bench_$tag.txt"
rc=${PIPESTATUS[0]}
status=0
if [ "$rc" -ne 0 ]; then
  echo "run.sh: fopt_bench failed (exit $rc)" >&2
  status=1
fi

echo "== validation against the CPU reference =="
if [ -s "$csv" ]; then
  # column 11 is max_rel_err; cpu_ref rows are the reference itself
  bad=$(awk -F, 'NR > 1 && $3 != "cpu_ref" && ($11 == "nan" || $11 == "" || $11 + 0 > 1e-4) {
                   printf "  %s %s %s %s tensors, %s elements: max_rel_err %s\n", $1, $2, $3, $5, $6, $11 }' "$csv")
  rows=$(awk -F, 'NR > 1 && $3 != "cpu_ref"' "$csv" | wc -l)
  if [ -n "$bad" ]; then
    echo "FAILED: these differ from the reference by more than 1e-4:"
    echo "$bad"
    status=1
  else
    worst=$(awk -F, 'NR > 1 && $3 != "cpu_ref" && $11 + 0 > w { w = $11 + 0 } END { printf "%.2e", w }' "$csv")
    echo "OK: $rows rows checked, largest max_rel_err $worst (limit 1e-4)"
  fi
else
  echo "FAILED: no CSV written"
  status=1
fi

py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import matplotlib' >/dev/null 2>&1; then py=$p; break; fi
done
if [ -n "$py" ] && [ -s "$csv" ]; then
  "$py" bench/plot.py "$csv" -o "$out/bench_$tag.png" || echo "run.sh: plot failed (not fatal)"
else
  echo "run.sh: no python3 with matplotlib: plot skipped"
fi

if [ -x "$build/bench/fopt_cpu_bench" ]; then
  echo "== fopt_cpu_bench =="
  cpu_args=()
  if "$build/bench/fopt_cpu_bench" --help 2>&1 | grep -q -- '--csv'; then
    cpu_args=(--csv "$out/cpu_bench.csv")
  fi
  "$build/bench/fopt_cpu_bench" "${cpu_args[@]}" | tee "$out/cpu_bench.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "run.sh: fopt_cpu_bench failed" >&2; status=1; }
fi

echo "== results in $out =="
ls -1 "$out"
exit $status
