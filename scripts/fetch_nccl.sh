#!/usr/bin/env bash
# Fetches NCCL's header and library from PyPI (the nvidia-nccl-cu13 wheel, through pip) into DEST,
# for building examples/zero1_nccl.cu where the CUDA toolkit has no NCCL. cmake/FindNCCL.cmake
# looks in <build>/_deps/nccl, so with the default DEST a reconfigure finds it.
#
#   scripts/fetch_nccl.sh [DEST]        default DEST=build/_deps/nccl
#
# Keeps only include/nccl.h and lib/libnccl.so.2 of the wheel (about 300 MB to download, 340 MB
# unpacked for the library). Does nothing when DEST already holds both.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-build/_deps/nccl}
if [ -f "$dest/include/nccl.h" ] && [ -f "$dest/lib/libnccl.so.2" ]; then
  echo "fetch_nccl: $dest already holds NCCL"
  exit 0
fi
python=$(command -v python3 || command -v python)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_nccl: downloading nvidia-nccl-cu13 from PyPI"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" nvidia-nccl-cu13
wheel=$(ls "$tmp"/nvidia_nccl_cu13-*.whl)
mkdir -p "$dest/include" "$dest/lib"
# a wheel is a zip file; Python's zipfile reads it where unzip is not installed
"$python" - "$wheel" "$dest" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name, out in (("nvidia/nccl/include/nccl.h", "include/nccl.h"),
                      ("nvidia/nccl/lib/libnccl.so.2", "lib/libnccl.so.2")):
        with z.open(name) as src, open(f"{dest}/{out}", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
echo "fetch_nccl: $(basename "$wheel") -> $dest"
