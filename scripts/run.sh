#!/usr/bin/env bash
# fusedopt's main job: build (Release, build/) if needed, benchmark every optimizer - fused GPU
# kernels, the unfused cuBLAS baseline, the fast CPU path and the CPU reference - check every
# implementation against the CPU reference, plot the results, then train the digits MLP example
# (scripts/train_digits.sh: on the CPU, and on the GPU when there is one) and plot its curves.
# Works with or without a GPU: without one, the GPU rows are skipped (said so clearly) and the CPU
# paths still run.
#
#   scripts/run.sh [--out DIR] [--quick] [--torch] [--no-digits] [-- more fopt_bench options]
#   (env FOPT_BUILD_DIR: build directory, default build)
#   --torch      also install python3-torch (root on Debian) for fopt_cpu_bench's PyTorch rows;
#                without it they run only when torch is already there (a line says so)
#
# What it needs (cmake, pkg-config, a compiler, python3-matplotlib, python3-sklearn) comes from
# scripts/deps.sh: installed when run as root on Debian, else it stops at once and prints the
# exact apt-get command. The CUDA toolkit must be there.
#
# Writes into DIR (default build/bench-results/, outside the tracked tree):
#   bench_<date>_<device>.csv  .txt (the table)  .png (the plot)
#   cpu_bench.csv / cpu_bench.txt                (when fopt_cpu_bench was built)
# and the digits run into BUILD/digits/ (digits.png, the CSVs and logs).
# It always ends with its plots: a missing PNG is a failure.
# Exit status: non-zero when the build or the benchmark fails, when an implementation differs
# from the reference by more than 1e-4 (relative to the tensor's largest magnitude) or gives NaN,
# when the digits example fails, or when a plot could not be made.
set -uo pipefail
cd "$(dirname "$0")/.."

out=build/bench-results
bench_args=()
torch=0
digits=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --quick) bench_args+=(--quick); shift ;;
    --torch) torch=1; shift ;;
    --no-digits) digits=0; shift ;;
    --) shift; bench_args+=("$@"); break ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
jobs=$(nproc 2>/dev/null || echo 2)
build=${FOPT_BUILD_DIR:-build}  # build directory (Release)
command -v nvcc >/dev/null 2>&1 || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH=/usr/local/cuda/bin:$PATH

echo "== dependencies (scripts/deps.sh) =="
groups=(build plot)
[ "$digits" = 0 ] || groups+=(digits)
bash scripts/deps.sh "${groups[@]}" || {
  echo "run.sh: install the packages named above (or run this as root on Debian), then run it again" >&2; exit 1; }
if [ "$torch" = 1 ]; then
  bash scripts/deps.sh torch || echo "run.sh: PyTorch could not be installed: its rows are skipped"
elif ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  echo "run.sh: PyTorch comparison skipped: /usr/bin/python3 has no torch (scripts/run.sh --torch, or scripts/deps.sh torch, installs python3-torch)"
fi
# the Python with Debian's matplotlib (pyenv's or a venv's may come first on PATH)
py=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import matplotlib' >/dev/null 2>&1; then py=$p; break; fi
done

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

png="$out/bench_$tag.png"
rm -f "$png"
if [ -z "$py" ]; then
  echo "run.sh: FAILED: no python3 with matplotlib for the plot: apt-get install -y python3-matplotlib" >&2
  status=1
elif [ ! -s "$csv" ]; then
  echo "run.sh: FAILED: no CSV to plot" >&2
  status=1
elif ! "$py" bench/plot.py "$csv" -o "$png" || [ ! -s "$png" ]; then
  echo "run.sh: FAILED: bench/plot.py did not write $png" >&2
  status=1
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

digits_png=""
if [ "$digits" = 1 ]; then
  echo "== digits MLP example (scripts/train_digits.sh $build) =="
  digits_png="$build/digits/digits.png"
  rm -f "$digits_png"
  bash scripts/train_digits.sh "$build" || { echo "run.sh: FAILED: the digits example (above)" >&2; status=1; }
  if [ -s "$build/digits/cpu.csv" ]; then
    # the CPU run's training loss per epoch, as a terminal sparkline (the PNG has the full plot)
    awk -F, 'NR > 1 { e[NR - 1] = $1; l[NR - 1] = log($2); n = NR - 1 }
      END { if (n == 0) exit; lo = hi = l[1]; for (i = 1; i <= n; i++) { if (l[i] < lo) lo = l[i]; if (l[i] > hi) hi = l[i] }
            split("\xe2\x96\x81 \xe2\x96\x82 \xe2\x96\x83 \xe2\x96\x84 \xe2\x96\x85 \xe2\x96\x86 \xe2\x96\x87 \xe2\x96\x88", b, " ")
            s = ""; for (i = 1; i <= n; i++) s = s b[hi > lo ? 1 + int(7 * (l[i] - lo) / (hi - lo) + 0.5) : 1]
            printf "digits cpu train loss (log scale), epochs 1..%d: %s\n", n, s }' "$build/digits/cpu.csv"
  fi
  if [ ! -s "$digits_png" ]; then
    echo "run.sh: FAILED: no digits plot ($digits_png)" >&2
    status=1
  fi
fi

echo "== results in $out =="
ls -1 "$out"
[ -s "$png" ] && echo "plot: $png"
[ -n "$digits_png" ] && [ -s "$digits_png" ] && echo "digits curves: $digits_png"
[ "$status" -eq 0 ] || echo "run.sh: FAILED (see the lines marked FAILED above)"
exit $status
