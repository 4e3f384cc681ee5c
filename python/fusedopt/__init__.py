"""fusedopt: fused optimizer kernels (Adam, AdamW, RMSprop) from libfusedopt, through ctypes.

    import fusedopt
    fusedopt.lib_path()          # which libfusedopt.so was loaded (env FUSEDOPT_LIB overrides)
    import fusedopt.torch as fo  # torch.optim drop-ins: fo.Adam, fo.AdamW, fo.RMSprop

The library is found, in order, through the environment variable FUSEDOPT_LIB, the build tree of
a source checkout (build/libfusedopt.so next to python/), the one pip bundled in the package
(fusedopt/libfusedopt.so), an install prefix (lib/ or lib64/ under sys.prefix, /usr/local, /usr,
...), then the system's library search (ctypes.util.find_library). `python -m fusedopt` says
which one it loaded, and the CPU and CUDA device it uses.
"""
from ._lib import FusedOptError, Library, candidate_paths, lib_path, library

__version__ = "0.2.0"
__all__ = ["FusedOptError", "Library", "candidate_paths", "lib_path", "library", "version",
           "cpu_threads", "set_cpu_threads", "cpu_isa"]


def version():
    """The version of the loaded libfusedopt (e.g. "0.2.0")."""
    return library().version


def cpu_threads():
    """Threads the fast CPU path uses (FOPT_NUM_THREADS or every core by default)."""
    return library().cpu_threads()


def set_cpu_threads(n):
    """Sets the fast CPU path's thread count; 0 restores the default."""
    library().set_cpu_threads(n)


def cpu_isa():
    """The instruction set the fast CPU path chose: "avx512", "avx2" or "scalar"."""
    return library().cpu_isa()
