#!/usr/bin/env bash
# fusedopt's main job: build (Release, build/) if needed, benchmark every optimizer - fused GPU
# kernels, the unfused cuBLAS baseline, the fast CPU path and the CPU reference - check every
# implementation against the CPU reference, plot the results, then train the digits MLP example
# (scripts/train_digits.sh: on the CPU, and on the GPU when there is one) and plot its curves.
# Works with or without a GPU: without one, the GPU rows are skipped (said so clearly) and the CPU
# paths still run.
#
#   scripts/run.sh [--out DIR] [--quick] [--torch] [--no-digits] [--verbose] [-- more fopt_bench options]
#   (env FOPT_BUILD_DIR: build directory, default build)
#   --torch      also install python3-torch (root on Debian) for fopt_cpu_bench's PyTorch rows;
#                without it they run only when torch is already there (a line says so)
#   --verbose    print the build log and the benchmarks' full tables as they run (by default
#                they go to DIR/logs/ and the terminal gets a line per stage and a summary)
#
# What it needs (cmake, pkg-config, a compiler, python3-matplotlib, python3-sklearn) comes from
# scripts/deps.sh: installed when run as root on Debian, else it stops at once and prints the
# exact apt-get command. The CUDA toolkit must be there.
#
# Writes into DIR (default build/bench-results/, outside the tracked tree):
#   bench_<date>_<device>.csv  .txt (the table)  .png (the plot)
#   cpu_bench.csv / cpu_bench.txt                (when fopt_cpu_bench was built)
#   logs/                                        the build log and each stage's full output
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
verbose=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --quick) bench_args+=(--quick); shift ;;
    --torch) torch=1; shift ;;
    --no-digits) digits=0; shift ;;
    --verbose|-v) verbose=1; shift ;;
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

t_start=$SECONDS
mkdir -p "$out/logs"
logs=$out/logs
# stage NAME LOG CMD...: runs CMD with its output in LOG (and on the terminal with --verbose);
# prints one line with the time taken, and the end of LOG when CMD fails. Returns CMD's status.
stage() {
  local name=$1 log=$2 t0=$SECONDS rc; shift 2
  printf '%-42s ' "$name..."
  if [ "$verbose" = 1 ]; then echo; "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  else "$@" >"$log" 2>&1; rc=$?; fi
  if [ "$rc" -eq 0 ]; then echo "done ($((SECONDS - t0)) s)"; else
    echo "FAILED (exit $rc, $((SECONDS - t0)) s; last lines of $log:)"; tail -n 25 "$log" | sed 's/^/    /'; fi
  return "$rc"
}
# the build with a progress line every 10% (make's [ NN%] lines), the log in $logs/build.log
build_progress() {
  cmake --build "$build" -j "$jobs" 2>&1 | tee "$logs/build.log" | awk '
    match($0, /^\[ *[0-9]+%\]/) { p = substr($0, 2, RLENGTH - 3) + 0
      if (p >= next_p) { printf "  build %3d%%  %s\n", p, substr($0, RLENGTH + 2); fflush(); next_p = p - p % 10 + 10 } }
    BEGIN { next_p = 10 }'
  return "${PIPESTATUS[0]}"
}

echo "== build (Release, $build/: a few minutes on 2 cores, most of it device code) =="
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$logs/configure.log" 2>&1 || {
    tail -30 "$logs/configure.log"; echo "run.sh: configure failed ($logs/configure.log)" >&2; exit 1; }
fi
t0=$SECONDS
if [ "$verbose" = 1 ]; then cmake --build "$build" -j "$jobs" 2>&1 | tee "$logs/build.log"; rc=${PIPESTATUS[0]}
else build_progress; rc=$?; fi
[ "$rc" -eq 0 ] || { tail -40 "$logs/build.log"; echo "run.sh: build failed ($logs/build.log)" >&2; exit 1; }
echo "build: done in $((SECONDS - t0)) s"
[ -x "$build/bench/fopt_bench" ] || { echo "run.sh: $build/bench/fopt_bench was not built" >&2; exit 1; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  gpu_line="GPU: $device - the GPU and CPU paths are measured"
else
  device=cpu
  gpu_line="GPU: none on this machine - the GPU rows are SKIPPED, the CPU paths are measured (scripts/gpu_check.sh on a GPU machine measures the GPU)"
fi
echo "$gpu_line"
tag="$(date +%Y%m%d)_$(echo "$device" | tr -c 'A-Za-z0-9.\n-' '_' | tr -s '_')"
csv="$out/bench_$tag.csv"
txt="$out/bench_$tag.txt"
status=0

echo "== benchmarks and validation =="
stage "fopt_bench (GPU vs CPU, reference)" "$txt" "$build/bench/fopt_bench" --csv "$csv" "${bench_args[@]}" ||
  { echo "run.sh: FAILED: fopt_bench (exit status 3: a row differs from the reference)" >&2; status=1; }

# The CSV's own check: every row but the reference's within 1e-4 of it (fusedopt's rows are
# bit-identical: fopt_bench's correctness line says how many)
valid="FAILED: no CSV written"
if [ -s "$csv" ]; then
  bad=$(awk -F, 'NR > 1 && $3 != "cpu_ref" && ($11 == "nan" || $11 == "" || $11 + 0 > 1e-4) {
                   printf "  %s %s %s %s tensors, %s elements: max_rel_err %s\n", $1, $2, $3, $5, $6, $11 }' "$csv")
  if [ -n "$bad" ]; then valid="FAILED: rows differ from the reference by more than 1e-4:"$'\n'"$bad"
  else valid=$(grep -a '^correctness:' "$txt" | tail -1); fi
fi
case $valid in FAILED*) status=1 ;; esac

png="$out/bench_$tag.png"
rm -f "$png"
if [ -z "$py" ]; then
  echo "run.sh: FAILED: no python3 with matplotlib for the plot: apt-get install -y python3-matplotlib" >&2
  status=1
elif [ ! -s "$csv" ]; then
  echo "run.sh: FAILED: no CSV to plot" >&2
  status=1
elif ! stage "plot" "$logs/plot.log" "$py" bench/plot.py "$csv" -o "$png" || [ ! -s "$png" ]; then
  echo "run.sh: FAILED: bench/plot.py did not write $png" >&2
  status=1
fi

cpu_txt=""
if [ -x "$build/bench/fopt_cpu_bench" ]; then
  cpu_txt="$out/cpu_bench.txt"
  stage "fopt_cpu_bench (fast path vs roofline)" "$cpu_txt" "$build/bench/fopt_cpu_bench" --csv "$out/cpu_bench.csv" ||
    { echo "run.sh: FAILED: fopt_cpu_bench" >&2; status=1; }
fi

digits_png=""
if [ "$digits" = 1 ]; then
  digits_png="$build/digits/digits.png"
  rm -f "$digits_png"
  stage "digits MLP example (train_digits.sh)" "$logs/digits.log" bash scripts/train_digits.sh "$build" ||
    { echo "run.sh: FAILED: the digits example ($logs/digits.log)" >&2; status=1; }
  if [ ! -s "$digits_png" ]; then
    echo "run.sh: FAILED: no digits plot ($digits_png)" >&2
    status=1
  fi
fi

echo
echo "== summary ($((SECONDS - t_start)) s) =="
echo "$gpu_line"
echo "$valid"
[ -s "$txt" ] && grep -a -E '^(device:|EMULATED|GPU rows SKIPPED)' "$txt" | head -2
[ -s "$txt" ] && grep -a -E '^targets: [0-9]+ of' "$txt"
[ -s "$txt" ] && grep -a -E '^target .*MISSED' "$txt" | head -8 | sed 's/^/  /'
if [ -n "$cpu_txt" ] && [ -s "$cpu_txt" ]; then
  # the fp32 Adam fast path against its roofline and the reference, and the PyTorch comparison
  awk '/^CPU_BENCH case=adam / && / dtype=fp32 / {
         for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         printf "CPU fast path, fp32 Adam, %s elements, %s threads (%s): %s Mparam/s, %s%% of the same-traffic roofline, %sx the reference\n",
                v["n"], v["threads"], v["isa"], v["fast_mparam_s"], v["pct_roofline"], v["speedup_vs_ref"]; exit }' "$cpu_txt"
  awk '/^CPU_VS_TORCH/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         printf "PyTorch %s CPU Adam (best of single-tensor and foreach) on the same elements: %sx the fast path'"'"'s time\n",
                v["torch"], v["speedup"]; exit }' "$cpu_txt"
  awk '/^target CPU/ { n++; if (/MISSED/) { m++; sub(/^target /, ""); miss = miss "  " $0 "\n" } }
       END { if (n) printf "CPU targets (>= 90%% of the same-traffic roofline per mode; informational, load moves them): %d of %d met\n%s", n - m, n, miss }' "$cpu_txt"
fi
[ "$digits" = 1 ] && grep -a -E '^digits: ' "$logs/digits.log" | sed 's/^/  /'
echo "files: $csv (CSV), $txt (table), $logs/ (logs)"
[ -s "$png" ] && echo "plot: $png"
[ -n "$digits_png" ] && [ -s "$digits_png" ] && echo "digits curves: $digits_png"
[ "$status" -eq 0 ] && echo "run.sh: OK" || echo "run.sh: FAILED (see the lines marked FAILED above)"
exit $status
