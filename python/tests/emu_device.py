"""Test-only: drives fusedopt.torch's GPU code path on libfusedopt's emulated device.

The emulated build (cmake -DFOPT_DEVICE_EMULATION=ON) runs the GPU optimizer object on the CPU:
"device memory" comes from its own allocator (fopt_dev_malloc), and the object rejects any other
pointer as host memory, as the CUDA build rejects a CPU tensor. EmuDevice gives the optimizer
what CudaDevice gives it on a GPU (pointers, a stream, a context), for CPU tensors: each tensor
handed to the GPU path gets a mirror buffer in emulated device memory, filled before every
launch and copied back after it. Everything else (binding, rebinding, groups and buckets, lr and
weight-decay updates, AMP options, state copies in and out, step counts) is the package's own
GPU code, unchanged.

    dev = EmuDevice(emu_library)
    opt = fo.Adam(params)            # CPU tensors
    opt._fopt_device = dev           # the GPU path claims them
"""
import collections
import contextlib
import copy
import ctypes
import os

from fusedopt import _lib as L

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_emulated_library():
    """The emulated libfusedopt: FUSEDOPT_LIB if that is one, else FUSEDOPT_EMU_LIB, else
    build-emu/libfusedopt.so in the source tree; None if there is none."""
    cands = []
    if os.environ.get("FUSEDOPT_EMU_LIB"):
        cands.append(os.environ["FUSEDOPT_EMU_LIB"])
    if os.environ.get("FUSEDOPT_LIB"):
        cands.append(os.environ["FUSEDOPT_LIB"])
    cands.append(os.path.join(ROOT, "build-emu", "libfusedopt.so"))
    for path in cands:
        if os.path.isfile(path):
            lib = L.Library(path)
            if lib.emulated:
                return lib
    return None


class _CountingCDLL:
    """Counts the library functions the optimizer looks up (one lookup per call)."""

    def __init__(self, cdll, counts):
        self._cdll, self._counts = cdll, counts

    def __getattr__(self, name):
        self._counts[name] += 1
        return getattr(self._cdll, name)


class EmuDevice:
    """only: if given, the ids of the tensors this device claims (the others stay on the CPU
    path: a group spread over two devices)."""

    raw = False  # device pointers are mirrors, not the tensors' data_ptr()

    def __init__(self, lib, only=None):
        assert lib.emulated, "%s is not the emulated build" % lib.path
        self.calls = collections.Counter()
        self.lib = copy.copy(lib)
        self.lib.cdll = _CountingCDLL(lib.cdll, self.calls)
        self.only = only
        c = lib.cdll
        c.fopt_dev_malloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        c.fopt_dev_malloc.restype = ctypes.c_int
        c.fopt_dev_free.argtypes = [ctypes.c_void_p]
        c.fopt_dev_free.restype = ctypes.c_int
        c.fopt_emu_live_bytes.restype = ctypes.c_longlong
        c.fopt_emu_fail_at.argtypes = [ctypes.c_long]
        c.fopt_emu_fail_at.restype = None
        c.fopt_emu_calls.restype = ctypes.c_long
        self._fail_abs = 0
        self.mirrors = {}   # (host address, bytes) -> emulated device address
        self.touched = {}   # the same keys -> (tensor, device address, bytes), this launch
        self.launches = 0

    # -- the device interface of fusedopt.torch (see CudaDevice) --
    def claims(self, t):
        return t.device.type == "cpu" and (self.only is None or id(t) in self.only)

    def key(self, t):
        return 0

    def context(self, key):
        return contextlib.nullcontext()

    def stream(self, key):
        return None

    def ptr(self, t):
        n = t.numel() * t.element_size()
        if n == 0:
            return 0
        k = (t.data_ptr(), n)
        d = self.mirrors.get(k)
        if d is None:
            c = self.lib.cdll._cdll
            buf = ctypes.c_void_p()
            if self._fail_abs:  # keep an armed fault for the optimizer's own calls
                c.fopt_emu_fail_at(0)
            assert c.fopt_dev_malloc(ctypes.byref(buf), n) == 0
            if self._fail_abs:
                self._fail_abs += 1
                c.fopt_emu_fail_at(self._fail_abs - c.fopt_emu_calls())
            d = self.mirrors[k] = buf.value
        self.touched[k] = (t, d, n)
        return d

    def premap(self, tensors):
        """Allocates the mirrors of these tensors now (fault-injection tests arm the emulator
        for the optimizer's own calls only)."""
        saved = dict(self.touched)
        for t in tensors:
            self.ptr(t)
        self.touched = saved

    def begin(self):
        self.touched = {}

    def collect(self):
        token, self.touched = self.touched, {}
        return token

    def resume(self, token):
        self.touched = dict(token)

    # Emulated device memory is host memory: plain memmove, which the emulator's fault injection
    # (it counts its own copies) does not see.
    def before_launch(self):
        for t, d, n in self.touched.values():
            ctypes.memmove(d, t.data_ptr(), n)

    def after_launch(self):
        self.launches += 1
        for t, d, n in self.touched.values():
            ctypes.memmove(t.data_ptr(), d, n)

    def synchronize(self, key):
        pass

    # -- test helpers --
    def live_bytes(self):
        return self.lib.cdll._cdll.fopt_emu_live_bytes()

    def fail_at(self, n):
        """The n-th countable emulated device call the optimizer makes from now fails (0: none);
        the mirrors' own allocations are not counted."""
        c = self.lib.cdll._cdll
        c.fopt_emu_fail_at(n)
        self._fail_abs = c.fopt_emu_calls() + n if n > 0 else 0

    def close(self):
        for d in self.mirrors.values():
            self.lib.cdll._cdll.fopt_dev_free(d)
        self.mirrors = {}
        self.touched = {}
