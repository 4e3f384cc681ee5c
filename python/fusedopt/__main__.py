"""python -m fusedopt: what this installation uses (no torch needed).

Prints the package and library versions, the libfusedopt file loaded, the fast CPU path's
instruction set and threads, and the CUDA device the GPU optimizer would use, or why there is
none. Exits 1 when the library cannot be loaded."""
import ctypes
import os
import sys

from . import __version__
from ._lib import FusedOptError, library

_CUDA_SUCCESS = 0
_NOT_SUPPORTED = 2                          # FOPT_ERROR_NOT_SUPPORTED
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76   # cudaDevAttrComputeCapabilityMajor / Minor


def _loaded_cudart():
    """The libcudart this process loaded with libfusedopt (/proc/self/maps), else its name."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1]
                if os.path.basename(path).startswith("libcudart.so"):
                    return path
    except OSError:
        pass
    return None


def cuda_device(lib):
    """One line: the CUDA device 0 the library sees, or why there is none."""
    if lib.emulated:
        return "emulated device (a FOPT_DEVICE_EMULATION build: the GPU object runs on the CPU)"
    path = _loaded_cudart()
    if path is None:
        if lib.cdll.fopt_step(None, None) == _NOT_SUPPORTED:   # the GPU functions of -DFOPT_CUDA=OFF
            return ("none: this libfusedopt was built without CUDA (no nvcc when it was built): "
                    "CPU tensors only")
        return "none: libfusedopt loaded no CUDA runtime (libcudart)"
    rt = ctypes.CDLL(path)
    rt.cudaGetErrorString.restype = ctypes.c_char_p
    n = ctypes.c_int(0)
    err = rt.cudaGetDeviceCount(ctypes.byref(n))
    if err != _CUDA_SUCCESS:
        return "none: cudaGetDeviceCount failed: %s (error %d)" % (
            rt.cudaGetErrorString(err).decode(errors="replace"), err)
    if n.value == 0:
        return "none: the CUDA runtime sees no device"
    major, minor = ctypes.c_int(), ctypes.c_int()
    rt.cudaDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, 0)
    rt.cudaDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, 0)
    name = "CUDA device 0"
    props = ctypes.create_string_buffer(8192)   # cudaDeviceProp starts with char name[256]
    get = getattr(rt, "cudaGetDeviceProperties_v2", None) or rt.cudaGetDeviceProperties
    if get(props, 0) == _CUDA_SUCCESS:
        name = props.raw[:256].split(b"\0", 1)[0].decode(errors="replace")
    return "%s (sm_%d%d)%s, CUDA runtime %s" % (name, major.value, minor.value,
                                               " and %d more" % (n.value - 1) if n.value > 1 else "",
                                               os.path.basename(path))


def main():
    print("fusedopt %s (Python package at %s)" % (__version__, os.path.dirname(__file__)))
    try:
        lib = library()
    except FusedOptError as e:
        print("libfusedopt: not loaded: %s" % e)
        return 1
    print("libfusedopt %s at %s" % (lib.version, lib.path))
    print("CPU: %s, %d threads" % (lib.cpu_isa(), lib.cpu_threads()))
    print("CUDA: %s" % cuda_device(lib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
