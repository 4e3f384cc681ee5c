#!/usr/bin/env bash
# Trains the digits MLP written in C (examples/digits_mlp.c, examples/digits_mlp_gpu.cu) and checks
# it: converts scikit-learn's digits, trains on the CPU (always) and on the GPU (when nvidia-smi -L
# lists one), interrupts a CPU run with a checkpoint and resumes it, plots the loss curves.
#
#   scripts/train_digits.sh [BUILD_DIR]        default build (the project must be built there)
#
# Writes into BUILD_DIR/digits/: digits.bin (the data), cpu.csv / cpu.log, gpu.csv / gpu.log,
# resume_*.csv / .log, the checkpoint, digits.png. Needs Debian's python3-sklearn (and
# python3-matplotlib for the plot, which is optional).
# Exit status non-zero when a program fails, the CPU test accuracy is below 95%, the resumed run's
# final parameters (checksum) or CSV differ from the uninterrupted run's, or, with a GPU, its run,
# its resume or its accuracy (95%, and within 0.5 points of the CPU's) fails.
set -uo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in -h|--help) sed -n "2,14p" "$0"; exit 0 ;; esac
build=${1:-build}
out=$build/digits
cpu_exe=$build/examples/digits_mlp
gpu_exe=$build/examples/digits_mlp_gpu
stop_after=12 # epochs before the interruption (of 30)

if [ ! -x "$cpu_exe" ]; then
  echo "train_digits.sh: $cpu_exe not found: build the project first" >&2
  echo "  (cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build -j)" >&2
  exit 1
fi
py=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy, sklearn' >/dev/null 2>&1; then py=$p; break; fi
done
if [ -z "$py" ]; then
  echo "train_digits.sh: no python3 with scikit-learn: apt-get install python3-sklearn" >&2
  exit 1
fi
mkdir -p "$out"
"$py" scripts/digits_data.py "$out/digits.bin" || { echo "train_digits.sh: data conversion failed" >&2; exit 1; }

status=0
fail() { echo "train_digits.sh: FAILED: $*" >&2; status=1; }
# value after "$2" on the last line of log $1 that has it, e.g. field log 'test accuracy' -> 98.05
field() { sed -n "s/.*$2 \([0-9a-f.]*\).*/\1/p" "$1" | tail -1; }

# run NAME EXE [args...]: EXE DATA args, output to $out/NAME.log (and the terminal)
run() {
  local name=$1 exe=$2; shift 2
  "$exe" "$out/digits.bin" "$@" 2>&1 | tee "$out/$name.log"
  return "${PIPESTATUS[0]}"
}

# resume_check KIND EXE REFERENCE_LOG: stop after $stop_after epochs, resume, compare with the
# uninterrupted run (checksum of the final parameters, and the whole CSV)
resume_check() {
  local kind=$1 exe=$2 ref=$3
  echo "== $kind: checkpoint after $stop_after epochs, then resume =="
  rm -f "$out/${kind}.ckpt"
  run "resume_${kind}_part1" "$exe" --quiet --checkpoint "$out/${kind}.ckpt" --stop-after "$stop_after" \
    || { fail "$kind run with --stop-after"; return; }
  run "resume_${kind}" "$exe" --quiet --resume "$out/${kind}.ckpt" --csv "$out/resume_${kind}.csv" \
    || { fail "$kind run with --resume"; return; }
  local a b
  a=$(field "$ref" 'params checksum'); b=$(field "$out/resume_${kind}.log" 'params checksum')
  if [ -n "$a" ] && [ "$a" = "$b" ] && cmp -s "$out/${kind}.csv" "$out/resume_${kind}.csv"; then
    echo "$kind resume: final parameters identical (checksum $a), CSV identical: OK"
    printf -v "${kind}_resume" '%s' "identical (checksum $a): OK"
  else
    fail "$kind resume differs: checksum ${a:-?} uninterrupted, ${b:-?} resumed"
    printf -v "${kind}_resume" '%s' "DIFFERS (${a:-?} vs ${b:-?})"
  fi
}

echo "== cpu: $cpu_exe =="
cpu_resume="not run"; gpu_resume="not run"
run cpu "$cpu_exe" --csv "$out/cpu.csv" || fail "digits_mlp exited with an error"
cpu_acc=$(field "$out/cpu.log" 'test accuracy')
cpu_ms=$(field "$out/cpu.log" 'train loss [0-9.]*,')
cpu_ok=$(awk -v a="${cpu_acc:-0}" 'BEGIN { print (a + 0 >= 95.0) ? "OK" : "FAILED" }')
[ "$cpu_ok" = OK ] || fail "cpu test accuracy ${cpu_acc:-?}% < 95%"
resume_check cpu "$cpu_exe" "$out/cpu.log"

csvs=("cpu=$out/cpu.csv")
gpu_line="gpu: skipped (no GPU)"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  if [ ! -x "$gpu_exe" ]; then
    fail "a GPU is here but $gpu_exe was not built"
  else
    echo "== gpu: $gpu_exe =="
    if run gpu "$gpu_exe" --csv "$out/gpu.csv"; then
      gpu_acc=$(field "$out/gpu.log" 'test accuracy')
      gpu_ms=$(field "$out/gpu.log" 'train loss [0-9.]*,')
      csvs+=("gpu=$out/gpu.csv")
      verdict=$(awk -v g="${gpu_acc:-0}" -v c="${cpu_acc:-0}" 'BEGIN { d = g - c; if (d < 0) d = -d;
        printf "%s", (g + 0 >= 95.0 && d <= 0.5) ? "OK" : "FAILED" }')
      gpu_line="gpu test accuracy ${gpu_acc:-?}% (${gpu_ms:-?} ms/epoch; >= 95% and within 0.5 of the cpu: $verdict)"
      [ "$verdict" = OK ] || fail "gpu test accuracy ${gpu_acc:-?}% (cpu ${cpu_acc:-?}%)"
      resume_check gpu "$gpu_exe" "$out/gpu.log"
    else
      fail "digits_mlp_gpu exited with an error"
      gpu_line="gpu: FAILED (see $out/gpu.log)"
    fi
  fi
fi

echo "== plot =="
plot_py=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import matplotlib' >/dev/null 2>&1; then plot_py=$p; break; fi
done
if [ -n "$plot_py" ]; then
  "$plot_py" scripts/plot_digits.py "${csvs[@]}" -o "$out/digits.png" || echo "train_digits.sh: plot failed (not fatal)"
else
  echo "train_digits.sh: no python3 with matplotlib, plot skipped: apt-get install python3-matplotlib"
fi

echo "== summary =="
echo "digits: cpu resume: $cpu_resume"
[ "$gpu_resume" = "not run" ] || echo "digits: gpu resume: $gpu_resume"
echo "digits: $gpu_line"
echo "digits: cpu test accuracy ${cpu_acc:-?}% (${cpu_ms:-?} ms/epoch; >= 95%: $cpu_ok)"
exit $status
