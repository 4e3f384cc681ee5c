#!/usr/bin/env bash
# GPU checks of the Python package (fusedopt.torch) on a machine with a CUDA device and a CUDA
# build of PyTorch: the whole pytest suite (test_cuda.py runs there; the emulated-device tests
# run when build-emu/libfusedopt.so exists) and bench/torch_compare.py --quick through the
# package. Logs and the CSV go to $OUT (default build/py_gpu).
#
#   bash python/gpu_checks.sh [path/to/libfusedopt.so]     (default: build/libfusedopt.so,
#                                                           built here if missing)
# env: PY_GPU_BENCH_BUDGET (seconds for torch_compare, default 150), PYTHON (default python3)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/py_gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
lib=${1:-${FUSEDOPT_LIB:-build/libfusedopt.so}}
if [ ! -f "$lib" ]; then
  echo "== building libfusedopt ($lib missing) =="
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DFOPT_BUILD_TESTS=OFF -DFOPT_BUILD_BENCH=OFF >"$out/build.log" 2>&1 &&
    cmake --build build -j"$(nproc)" --target fusedopt >>"$out/build.log" 2>&1 ||
    { tail -20 "$out/build.log"; exit 1; }
  lib=build/libfusedopt.so
fi
export FUSEDOPT_LIB=$(readlink -f "$lib")
# the CUDA runtime libfusedopt links: the toolkit's, when the loader does not find it
if ldd "$FUSEDOPT_LIB" | grep -q "not found"; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
fi
export PYTHONUNBUFFERED=1
{
  nvidia-smi -L 2>/dev/null
  "$py" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  "$py" -c "import sys; sys.path.insert(0, 'python'); import torch, fusedopt; print('libfusedopt', fusedopt.version(), fusedopt.lib_path(), fusedopt.cpu_isa(), fusedopt.cpu_threads(), 'threads')"
} 2>&1 | tee "$out/py_env.txt"

echo "== pytest python/tests =="
"$py" -m pytest python/tests -q -rsx --durations=8 -p no:cacheprovider 2>&1 | tee "$out/py_tests.log"
tests_rc=${PIPESTATUS[0]}

echo "== bench/torch_compare.py --quick =="
"$py" bench/torch_compare.py "$FUSEDOPT_LIB" --quick --csv "$out/torch_py.csv" \
  --time-budget "${PY_GPU_BENCH_BUDGET:-150}" --cpu-budget 3 2>&1 | tee "$out/torch_py.txt"
bench_rc=${PIPESTATUS[0]}

echo "== python gpu checks: pytest rc=$tests_rc, torch_compare rc=$bench_rc =="
grep -E "passed|failed" "$out/py_tests.log" | tail -1
sed -n '/^== torch_compare summary/,$p' "$out/torch_py.txt"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
