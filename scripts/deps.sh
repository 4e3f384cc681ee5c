#!/usr/bin/env bash
# What fusedopt's scripts need from the system, in groups; the one place that knows the Debian
# package names. .ci/run, scripts/test.sh and scripts/run.sh call it.
#
#   scripts/deps.sh [--check] GROUP...
#
#   build   cmake, pkg-config, a C/C++ compiler, OpenMP (the library, examples, benchmarks)
#   tests   build + libcriterion-dev (the test suite)
#   plot    python3-matplotlib (the PNGs of scripts/run.sh and scripts/train_digits.sh)
#   digits  python3-sklearn, python3-numpy (the digits data of scripts/train_digits.sh)
#   sass    only when cuobjdump/nvdisasm are not installed: a Python with pip or venv, so
#           scripts/sass_check.sh can fetch them from PyPI (python3-pip, python3-venv)
#   torch   python3-torch (optional: the PyTorch CPU comparison of fopt_cpu_bench; large)
#   mpi     libopenmpi-dev, openmpi-bin (the MPI examples)
#   pytest  python3-torch, python3-pytest, python3-sklearn (the Python package's tests, on Debian's
#           /usr/bin/python3), python3-venv when no python3 can make a venv (scripts/pip_check.sh)
#
# Each requirement is checked by what it provides (a command, a header, a Python import), so
# anything installed another way counts. When something is missing: as root on Debian (apt-get
# present) it runs `apt-get update` once and installs the missing packages; otherwise, or with
# --check, it prints the exact command to run and installs nothing. The CUDA toolkit (nvcc) is
# checked by the build and tests groups but never installed (it does not come from Debian); with
# FOPT_DEPS_NO_CUDA=1 (a build without CUDA, -DFOPT_CUDA=OFF) its absence is only noted.
#
# Prints one line per group. Exit status: 0 when everything asked for is there at the end,
# 1 when something is still missing (the line says what and the command that installs it),
# 2 on a usage error.
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d'; }
check_only=0
groups=()
for a in "$@"; do
  case "$a" in
    --check) check_only=1 ;;
    -h|--help) usage; exit 0 ;;
    build|tests|plot|digits|sass|torch|mpi|pytest) groups+=("$a") ;;
    *) echo "deps.sh: unknown group '$a' (build tests plot digits sass torch mpi pytest)" >&2; exit 2 ;;
  esac
done
[ ${#groups[@]} -gt 0 ] || { usage >&2; exit 2; }

# The Python that Debian's python3-* packages serve (pyenv or a venv may come first on PATH).
pys() { local p; for p in /usr/bin/python3 python3; do command -v "$p" >/dev/null 2>&1 && echo "$p"; done; }
py_has() { local p; for p in $(pys); do "$p" -c "import $1" >/dev/null 2>&1 && return 0; done; return 1; }
have() { command -v "$1" >/dev/null 2>&1; }
header() { # header PATH: found under a usual include root
  local d
  for d in /usr/include /usr/local/include /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu; do
    [ -f "$d/$1" ] && return 0
  done
  return 1
}
libgomp() { ls /usr/lib/gcc/*/*/libgomp.so /usr/lib/*/libgomp.so.1 >/dev/null 2>&1; }
nvcc_path() {
  local d
  have nvcc && { command -v nvcc; return; }
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [ -n "$d" ] && [ -x "$d/bin/nvcc" ] && { echo "$d/bin/nvcc"; return; }
  done
}
cuobjdump_path() {
  local d
  have cuobjdump && have nvdisasm && { command -v cuobjdump; return; }
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    [ -n "$d" ] && [ -x "$d/bin/cuobjdump" ] && [ -x "$d/bin/nvdisasm" ] && { echo "$d/bin/cuobjdump"; return; }
  done
}
py_pip_or_venv() { local p; for p in $(pys); do
  "$p" -m pip --version >/dev/null 2>&1 && return 0
  "$p" -c 'import venv, ensurepip' >/dev/null 2>&1 && return 0
done; return 1; }

# missing GROUP: prints the Debian packages GROUP lacks, one per line
missing() {
  case "$1" in
    build)
      have cmake || echo cmake
      have pkg-config || echo pkg-config
      { have cc && have c++; } || echo build-essential
      libgomp || echo libgomp1 ;;
    tests)
      missing build
      header criterion/criterion.h || echo libcriterion-dev ;;
    plot)
      have /usr/bin/python3 || have python3 || echo python3
      py_has matplotlib || echo python3-matplotlib ;;
    digits)
      py_has numpy || echo python3-numpy
      py_has sklearn || echo python3-sklearn ;;
    sass)
      if [ -z "$(cuobjdump_path)" ] && ! py_pip_or_venv; then echo python3-pip; echo python3-venv; fi ;;
    torch)
      py_has torch || echo python3-torch ;;
    pytest)
      /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || echo python3-torch
      /usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || echo python3-pytest
      # the training tests use the digits data (with random data instead, their thresholds fail)
      /usr/bin/python3 -c 'import sklearn' >/dev/null 2>&1 || echo python3-sklearn
      # scripts/pip_check.sh makes a venv (python3 -m venv needs ensurepip)
      python3 -c 'import ensurepip' >/dev/null 2>&1 || /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 ||
        echo python3-venv ;;
    mpi)
      { have mpicc && have mpirun; } || { echo libopenmpi-dev; echo openmpi-bin; }
      header mpi.h || [ -n "$(ls /usr/lib/*/openmpi/include/mpi.h 2>/dev/null)" ] || echo libopenmpi-dev ;;
  esac
}

declare -A need_of=()
all=()
for g in "${groups[@]}"; do
  pk=$(missing "$g" | awk '!seen[$0]++' | paste -sd' ' -)
  need_of[$g]=$pk
  for p in $pk; do
    case " ${all[*]:-} " in *" $p "*) ;; *) all+=("$p") ;; esac
  done
done

installed=0
if [ ${#all[@]} -gt 0 ] && [ "$check_only" = 0 ] && [ "$(id -u)" = 0 ] && have apt-get; then
  echo "deps.sh: installing ${all[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >/tmp/fopt-deps-apt.log 2>&1 &&
     apt-get install -y -qq --no-install-recommends "${all[@]}" >>/tmp/fopt-deps-apt.log 2>&1; then
    installed=1
  else
    echo "deps.sh: apt-get failed (log: /tmp/fopt-deps-apt.log):"
    tail -n 5 /tmp/fopt-deps-apt.log | sed 's/^/  | /'
  fi
fi

status=0
cuda_said=0
for g in "${groups[@]}"; do
  left=$(missing "$g" | awk '!seen[$0]++' | paste -sd' ' -)
  if [ -z "$left" ]; then
    if [ -n "${need_of[$g]}" ] && [ "$installed" = 1 ]; then
      echo "deps.sh: $g: installed ${need_of[$g]}"
    else
      echo "deps.sh: $g: ok"
    fi
  else
    status=1
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo "
    echo "deps.sh: $g: MISSING $left; install with: ${sudo}apt-get install -y $left"
  fi
  if [ "$g" = build ] || [ "$g" = tests ]; then
    if [ "$cuda_said" = 0 ] && [ -z "$(nvcc_path)" ]; then
      cuda_said=1
      if [ "${FOPT_DEPS_NO_CUDA:-0}" = 1 ]; then
        echo "deps.sh: $g: no CUDA toolkit (nvcc): fine for a build without CUDA (-DFOPT_CUDA=OFF)"
      else
        status=1
        echo "deps.sh: $g: MISSING the CUDA toolkit (nvcc not on PATH, \$CUDA_HOME/bin or /usr/local/cuda/bin);" \
             "install NVIDIA's CUDA toolkit (not a Debian package here), or build without CUDA" \
             "(-DFOPT_CUDA=OFF; scripts/test.sh: FOPT_TEST_BUILDS=nocuda)"
      fi
    fi
  fi
done
exit $status
