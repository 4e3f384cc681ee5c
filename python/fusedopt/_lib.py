"""ctypes bindings of libfusedopt (mirrors include/fusedopt.h, version 0.2) and library discovery.

Nothing here needs torch. `Library` wraps one loaded libfusedopt; `library()` returns the
process-wide one, found as `lib_path()` says.
"""
import ctypes
import ctypes.util
import os
import sys
import threading

__all__ = ["FusedOptError", "Library", "library", "lib_path", "candidate_paths",
           "AdamConfig", "RmspropConfig", "Precision", "StepOptions", "HostTensor", "Tensor",
           "FLOAT32", "FLOAT16", "BFLOAT16",
           "SLOT_EXP_AVG", "SLOT_EXP_AVG_SQ", "SLOT_MAX_EXP_AVG_SQ", "SLOT_SQUARE_AVG",
           "SLOT_MOMENTUM_BUFFER", "SLOT_GRAD_AVG", "SLOT_MASTER", "MAX_GROUPS"]

# ---- enums and constants ------------------------------------------------------------------------
FLOAT32, FLOAT16, BFLOAT16 = 0, 1, 2
SLOT_EXP_AVG, SLOT_EXP_AVG_SQ, SLOT_MAX_EXP_AVG_SQ = 0, 1, 2
SLOT_SQUARE_AVG, SLOT_MOMENTUM_BUFFER, SLOT_GRAD_AVG = 0, 1, 2
SLOT_MASTER = 3
MAX_GROUPS = 64
REQUIRED_VERSION = (0, 2)  # the struct layouts below are those of 0.2

_c_double, _c_bool, _c_int, _vp = ctypes.c_double, ctypes.c_bool, ctypes.c_int, ctypes.c_void_p


class FusedOptError(RuntimeError):
    """A libfusedopt call failed. `status` is the fopt_status number, `status_name` its name
    (e.g. "FOPT_ERROR_INVALID_VALUE"), `detail` the text of fopt_last_error() and `call` the C
    function that failed."""

    def __init__(self, message, status=None, status_name=None, detail=None, call=None):
        super().__init__(message)
        self.status = status
        self.status_name = status_name
        self.detail = detail
        self.call = call


# ---- structs (field order and types as in fusedopt.h; tests compare with the C layout) ---------
class Precision(ctypes.Structure):
    _fields_ = [("state_dtype", _c_int), ("master_weights", _c_bool),
                ("stochastic_rounding", _c_bool), ("master_remainder", _c_bool),
                ("seed", ctypes.c_uint64)]


class AdamConfig(ctypes.Structure):
    _fields_ = [("lr", _c_double), ("beta1", _c_double), ("beta2", _c_double),
                ("eps", _c_double), ("weight_decay", _c_double),
                ("decoupled_weight_decay", _c_bool), ("amsgrad", _c_bool), ("maximize", _c_bool),
                ("precision", Precision), ("capturable", _c_bool)]


class RmspropConfig(ctypes.Structure):
    _fields_ = [("lr", _c_double), ("alpha", _c_double), ("eps", _c_double),
                ("weight_decay", _c_double), ("momentum", _c_double),
                ("centered", _c_bool), ("maximize", _c_bool),
                ("precision", Precision), ("capturable", _c_bool)]


class StepOptions(ctypes.Structure):
    _fields_ = [("grad_scale", _vp), ("max_grad_norm", _c_double), ("grad_norm", _vp),
                ("found_inf", _vp), ("zero_grads", _c_bool), ("grad_sq_sum", _vp)]


class HostTensor(ctypes.Structure):
    _fields_ = [("param", _vp), ("grad", _vp), ("numel", ctypes.c_size_t), ("dtype", _c_int),
                ("master", _vp), ("state", _vp * 3),
                # appended for shards (fopt_shard_pieces); zero: a whole tensor at its position
                ("piece", ctypes.c_bool), ("tensor", ctypes.c_size_t), ("elem_offset", ctypes.c_uint64)]


class Tensor(ctypes.Structure):
    _fields_ = [("param", _vp), ("grad", _vp), ("numel", ctypes.c_size_t), ("dtype", _c_int),
                ("group", ctypes.c_uint32)]


# (name, restype, argtypes); status-returning functions have restype c_int.
_P = ctypes.POINTER
_PROTOTYPES = [
    ("fopt_version", ctypes.c_char_p, []),
    ("fopt_status_string", ctypes.c_char_p, [_c_int]),
    ("fopt_last_error", ctypes.c_char_p, []),
    ("fopt_adam_config_default", AdamConfig, []),
    ("fopt_rmsprop_config_default", RmspropConfig, []),
    ("fopt_adam_step_cpu_multi", _c_int,
     [_P(AdamConfig), ctypes.c_int64, _P(HostTensor), ctypes.c_size_t, _P(StepOptions)]),
    ("fopt_adam_step_ref_multi", _c_int,
     [_P(AdamConfig), ctypes.c_int64, _P(HostTensor), ctypes.c_size_t, _P(StepOptions)]),
    ("fopt_rmsprop_step_cpu_multi", _c_int,
     [_P(RmspropConfig), ctypes.c_int64, _P(HostTensor), ctypes.c_size_t, _P(StepOptions)]),
    ("fopt_rmsprop_step_ref_multi", _c_int,
     [_P(RmspropConfig), ctypes.c_int64, _P(HostTensor), ctypes.c_size_t, _P(StepOptions)]),
    ("fopt_cpu_set_threads", _c_int, [_c_int]),
    ("fopt_cpu_threads", _c_int, []),
    ("fopt_cpu_isa", ctypes.c_char_p, []),
    ("fopt_adam_create", _c_int, [_P(_vp), _P(AdamConfig), _P(Tensor), ctypes.c_size_t]),
    ("fopt_rmsprop_create", _c_int, [_P(_vp), _P(RmspropConfig), _P(Tensor), ctypes.c_size_t]),
    ("fopt_step", _c_int, [_vp, _vp]),
    ("fopt_step_ex", _c_int, [_vp, _P(StepOptions), _vp]),
    ("fopt_set_lr", _c_int, [_vp, _c_double]),
    ("fopt_set_group_lr", _c_int, [_vp, ctypes.c_uint32, _c_double]),
    ("fopt_set_group_weight_decay", _c_int, [_vp, ctypes.c_uint32, _c_double]),
    ("fopt_rebind", _c_int, [_vp, _P(Tensor), ctypes.c_size_t, _vp]),
    ("fopt_step_count", ctypes.c_int64, [_vp]),
    ("fopt_set_step_count", _c_int, [_vp, ctypes.c_int64]),
    ("fopt_state_copy", _c_int, [_vp, ctypes.c_size_t, _c_int, _vp, _c_bool]),
    ("fopt_destroy", None, [_vp]),
]


class Library:
    """One loaded libfusedopt. Calls go through `call(name, *args)`, which raises FusedOptError
    with fopt_last_error() when the status is not FOPT_SUCCESS."""

    def __init__(self, path):
        self.path = path
        try:
            self.cdll = ctypes.CDLL(path)
        except OSError as e:
            # libfusedopt needs the CUDA runtime (libcudart.so.<major>). Where the loader path
            # lacks it (a pip-installed PyTorch brings its own), load the one found next to
            # the Python packages, then retry.
            if "libcudart" in str(e) and _preload_cudart(str(e)):
                try:
                    self.cdll = ctypes.CDLL(path)
                except OSError as e2:
                    raise FusedOptError("fusedopt: cannot load %s: %s" % (path, e2)) from None
            else:
                raise FusedOptError("fusedopt: cannot load %s: %s" % (path, e)) from None
        missing = []
        for name, restype, argtypes in _PROTOTYPES:
            try:
                fn = getattr(self.cdll, name)
            except AttributeError:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
        if missing:
            raise FusedOptError("fusedopt: %s lacks %s: not a libfusedopt %d.%d"
                                % (path, ", ".join(missing), *REQUIRED_VERSION))
        self.version = self.cdll.fopt_version().decode()
        try:
            major, minor = (int(x) for x in self.version.split(".")[:2])
        except ValueError:
            major = minor = -1
        if (major, minor) != REQUIRED_VERSION:
            raise FusedOptError("fusedopt: %s is libfusedopt %s; this package needs %d.%d.x (its "
                                "struct layouts)" % (path, self.version, *REQUIRED_VERSION))
        # The emulated-device build exports its device layer (tests use it).
        self.emulated = bool(getattr(self.cdll, "fopt_dev_emulated", None)
                             and self.cdll.fopt_dev_emulated())

    def last_error(self):
        return self.cdll.fopt_last_error().decode(errors="replace")

    def call(self, name, *args):
        status = getattr(self.cdll, name)(*args)
        if status != 0:
            self.fail(name, status)
        return status

    def fail(self, name, status, context=None):
        detail = self.last_error()
        sname = self.cdll.fopt_status_string(status).decode()
        msg = "%s failed: %s" % (name, detail)  # detail starts with the status name
        if context:
            msg = "%s: %s" % (context, msg)
        raise FusedOptError(msg, status=status, status_name=sname, detail=detail, call=name)

    def adam_config(self):
        return self.cdll.fopt_adam_config_default()

    def rmsprop_config(self):
        return self.cdll.fopt_rmsprop_config_default()

    def cpu_threads(self):
        return self.cdll.fopt_cpu_threads()

    def set_cpu_threads(self, n):
        self.call("fopt_cpu_set_threads", int(n))

    def cpu_isa(self):
        return self.cdll.fopt_cpu_isa().decode()

    def __repr__(self):
        return "<libfusedopt %s at %s%s>" % (self.version, self.path,
                                             " (emulated device)" if self.emulated else "")


def _preload_cudart(message):
    """Loads (RTLD_GLOBAL) the libcudart named in a loader error from the NVIDIA pip packages
    (nvidia-cuda-runtime*, as PyTorch's CUDA wheels install them). True if one was loaded."""
    import glob
    import re
    m = re.search(r"(libcudart\.so(?:\.\d+)*)", message)
    name = m.group(1) if m else "libcudart.so"
    for base in sys.path:
        if not base or not os.path.isdir(os.path.join(base, "nvidia")):
            continue
        for cand in sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib", name)) +
                           glob.glob(os.path.join(base, "nvidia", "*", "*", "lib", name))):
            try:
                ctypes.CDLL(cand, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                continue
    return False


# ---- discovery ----------------------------------------------------------------------------------
_NAMES = ("libfusedopt.so", "libfusedopt.so.0")
_HERE = os.path.dirname(os.path.abspath(__file__))


def _source_root():
    """The repository root when this package runs from a source checkout (python/fusedopt/)."""
    root = os.path.dirname(os.path.dirname(_HERE))
    if os.path.isfile(os.path.join(root, "include", "fusedopt.h")):
        return root
    return None


def candidate_paths():
    """Where the library is looked for, in order: [(description, path-or-name)]."""
    out = []
    env = os.environ.get("FUSEDOPT_LIB")
    if env:
        out.append(("env FUSEDOPT_LIB", env))
        return out  # an explicit choice: nothing else is tried
    root = _source_root()
    if root:
        for name in _NAMES:
            out.append(("source checkout build tree", os.path.join(root, "build", name)))
    # pip install ./python builds the library into the package
    out.append(("bundled with the package", os.path.join(_HERE, "libfusedopt.so")))
    prefixes = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.environ.get("CONDA_PREFIX"),
              "/usr/local", "/usr", "/opt/fusedopt"):
        if p and p not in prefixes:
            prefixes.append(p)
    for pre in prefixes:
        for libdir in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
            for name in _NAMES:
                out.append(("install prefix", os.path.join(pre, libdir, name)))
    return out


_lock = threading.Lock()
_library = None


def library():
    """The process-wide Library, loaded on first use."""
    global _library
    if _library is not None:
        return _library
    with _lock:
        if _library is None:
            _library = _find()
    return _library


def _find():
    tried = []
    cands = candidate_paths()
    for how, path in cands:
        if how == "env FUSEDOPT_LIB":
            if not os.path.exists(path):
                raise FusedOptError("fusedopt: FUSEDOPT_LIB=%s does not exist" % path)
            return Library(path)
        if os.path.isfile(path):
            return Library(path)
        tried.append(path)
    found = ctypes.util.find_library("fusedopt")
    if found:
        lib = Library(found)
        lib.path = _resolved(found)
        return lib
    tried.append("ctypes.util.find_library('fusedopt') (ldconfig cache, LD_LIBRARY_PATH)")
    raise FusedOptError(
        "fusedopt: libfusedopt not found. Set FUSEDOPT_LIB=/path/to/libfusedopt.so, or install "
        "the package with pip (pip install ./python builds the library into it), or build it "
        "(cmake -S . -B build && cmake --build build --target fusedopt) in the source checkout, "
        "or install it (cmake --install build --prefix PREFIX). Looked in:\n  "
        + "\n  ".join(tried))


def _resolved(name):
    """The file a library loaded by bare name came from (/proc/self/maps), else the name."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1]
                if os.path.basename(path) == name:
                    return path
    except OSError:
        pass
    return name


def lib_path():
    """The path of the libfusedopt this process uses (loads it if needed)."""
    return library().path
