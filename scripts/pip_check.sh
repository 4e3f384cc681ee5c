#!/usr/bin/env bash
# The Python package installed as a user installs it: a fresh venv, `pip install ./python`
# (scikit-build-core builds libfusedopt with the project's CMake and bundles it in the package),
# then, with no FUSEDOPT_LIB and outside the source tree: `python -m fusedopt`, which must load the
# bundled library, and one CPU Adam step through the torch-free ctypes layer (fusedopt._lib).
#
#   bash scripts/pip_check.sh
# env: PYTHON          the interpreter that makes the venv (default python3; /usr/bin/python3 is
#                      tried next when it cannot make one with pip)
#      PIP_CHECK_DIR   where the venv and logs go (default build/pip_check; emptied first)
#      PIP_CHECK_NO_CUDA=1  nvcc hidden (PATH without it, CUDACXX naming no file): pip must build
#                      the CPU-only library, and python -m fusedopt must say it has no CUDA
#      PIP_CHECK_ARCHS CUDA architectures of the check's build: "default" (the default) builds
#                      the project's list, as a user's pip install does; e.g. 90 builds one (about
#                      a third less compile time)
# Needs network access to PyPI (scikit-build-core), CMake >= 3.24, a C compiler and nvcc.
# Exit status non-zero on any failure; the last line says what passed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${PIP_CHECK_DIR:-build/pip_check}
archs=${PIP_CHECK_ARCHS:-default}
no_cuda=${PIP_CHECK_NO_CUDA:-0}
if [ "$no_cuda" = 1 ]; then
  # as scripts/test.sh's nocuda build: no directory with nvcc on PATH, CUDACXX naming no file
  PATH=$(tr ':' '\n' <<<"$PATH" | while read -r d; do [ -x "$d/nvcc" ] || printf '%s:' "$d"; done)
  export PATH=${PATH%:} CUDACXX=/nonexistent/nvcc CUDA_PATH=
else
  command -v nvcc >/dev/null 2>&1 || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH=/usr/local/cuda/bin:$PATH
fi
unset FUSEDOPT_LIB FUSEDOPT_EMU_LIB PYTHONPATH
rm -rf "$dir" && mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
t0=$SECONDS
fail() { echo "pip_check: FAILED: $*" >&2; exit 1; }

venv=$dir/venv
made=
for py in "${PYTHON:-python3}" /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  rm -rf "$venv"
  if "$py" -m venv "$venv" >"$dir/venv.log" 2>&1 && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    made=$py; break
  fi
done
[ -n "$made" ] || { cat "$dir/venv.log"; fail "no python3 here makes a venv with pip (apt-get install python3-venv)"; }
echo "pip_check: venv from $made ($("$venv/bin/python" --version 2>&1)) in $venv"

cfg=()
[ "$archs" = default ] || cfg=(-Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$archs")
echo "pip_check: pip install ./python${cfg[*]:+ ${cfg[*]}} (log $dir/pip.log)"
if ! "$venv/bin/python" -m pip install -v ./python "${cfg[@]}" >"$dir/pip.log" 2>&1; then
  grep -E -i -A4 'error|fusedopt:' "$dir/pip.log" | tail -40
  fail "pip install ./python (log $dir/pip.log)"
fi
grep -E 'fusedopt wheel:' "$dir/pip.log" | sed 's/^ *-- /pip_check: /'
echo "pip_check: installed in $(( SECONDS - t0 ))s"

cd "$dir"   # away from the checkout: only the installed package can be imported
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$venv/bin/python" -m fusedopt | tee "$dir/fusedopt.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "python -m fusedopt"
grep -q "^libfusedopt .* at $site/fusedopt/libfusedopt.so$" "$dir/fusedopt.txt" ||
  fail "python -m fusedopt did not load the library bundled in $site/fusedopt"
if [ "$no_cuda" = 1 ]; then
  grep -q 'fusedopt wheel: no CUDA compiler' "$dir/pip.log" || fail "pip did not build the CPU-only library"
  grep -q '^CUDA: none: this libfusedopt was built without CUDA' "$dir/fusedopt.txt" ||
    fail "python -m fusedopt does not say the library has no CUDA"
fi

"$venv/bin/python" - <<'PY' || fail "a CPU Adam step through fusedopt._lib"
import ctypes
from fusedopt import _lib as L
lib = L.library()
n = 37
param = (ctypes.c_float * n)(*([1.0] * n))
grad = (ctypes.c_float * n)(*[(-1.0) ** i for i in range(n)])
m, v = (ctypes.c_float * n)(), (ctypes.c_float * n)()
t = L.HostTensor()
t.param, t.grad, t.numel, t.dtype = ctypes.addressof(param), ctypes.addressof(grad), n, L.FLOAT32
t.state[0], t.state[1] = ctypes.addressof(m), ctypes.addressof(v)
cfg = lib.adam_config()
cfg.lr = 0.1
lib.call("fopt_adam_step_cpu_multi", ctypes.byref(cfg), 1, ctypes.byref(t), 1, None)
# Adam's first step moves every element by lr against its gradient's sign
bad = [i for i in range(n) if abs(param[i] - (1.0 + 0.1 * (-1.0) ** (i + 1))) > 1e-6]
assert not bad, [param[i] for i in bad]
print("pip_check: CPU Adam step through the installed package: OK (%s)" % lib.cpu_isa())
PY
echo "pip_check: OK: pip install ./python bundles $(basename "$site")/fusedopt/libfusedopt.so, python -m fusedopt and a CPU step work, in $(( SECONDS - t0 ))s"
