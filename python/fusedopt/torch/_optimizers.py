"""fusedopt.torch.Adam / AdamW / RMSprop: torch.optim.Optimizer subclasses over libfusedopt.

Where the state lives
  CPU parameters  state[p] holds torch tensors, as torch.optim keeps them ('step', 'exp_avg',
                  'exp_avg_sq', ...); each group is one fopt_*_step_cpu_multi call over pointers
                  to those tensors (the ctypes array is cached and patched when a pointer moves).
  CUDA parameters fusedopt's GPU optimizer object owns the moments in device memory (one object
                  per param group and device). state_dict(), deepcopy and pickling copy them out
                  with fopt_state_copy; load_state_dict() copies them back in at the next step.
                  The object is rebuilt (state carried over) when the set of parameters with a
                  gradient or a hyper-parameter other than lr / weight_decay changes.
"""
import ctypes
import itertools
import re
import weakref
from collections import defaultdict

import torch
from torch.optim import Optimizer

from .. import _lib as L
from .._lib import FusedOptError

__all__ = ["FusedOptimizer", "Adam", "AdamW", "RMSprop"]

_CODE = {torch.float32: L.FLOAT32, torch.float16: L.FLOAT16, torch.bfloat16: L.BFLOAT16}
_INF = float("inf")
_MISSING = object()

# Keys fusedopt adds to every param group (the precision options), with their defaults.
_PRECISION_DEFAULTS = dict(master_weights=False, master_remainder=False, stochastic_rounding=False,
                           state_dtype=torch.float32, rounding_seed=0)


# ---- small helpers ----------------------------------------------------------------------------

def _state_dtype(value):
    """torch.float32 / torch.bfloat16 from a dtype or its name."""
    if value is None:
        return torch.float32
    if isinstance(value, str):
        names = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
                 "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                 "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}
        key = value.lower().replace("torch.", "")
        if key not in names:
            raise ValueError("Invalid state_dtype: %r (torch.float32 or torch.bfloat16)" % value)
        value = names[key]
    if value in (torch.float32, torch.bfloat16):
        return value
    raise ValueError("Invalid state_dtype: %s (fusedopt keeps optimizer state in torch.float32 or "
                     "torch.bfloat16)" % value)


def _is_dense(t):
    """True when t's elements fill one block of memory without gaps or overlap (any dim order):
    an elementwise update over that raw block is an update of t."""
    if t.is_contiguous():
        return True
    dims = sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1)
    expect = 1
    for st, sz in dims:
        if st != expect:
            return False
        expect *= sz
    return True


def _real(t):
    """The tensor fusedopt steps: a complex tensor's real view (as torch's Adam and RMSprop do)."""
    if t.is_complex():
        if t.is_conj():
            t = t.resolve_conj()
        return torch.view_as_real(t)
    return t


def _alloc(p, dtype, staged):
    """A tensor for p's state: p's own layout (strides) when p is dense, else contiguous."""
    if staged:
        return torch.empty(p.shape, dtype=dtype, device=p.device)
    return torch.empty_strided(p.shape, p.stride(), dtype=dtype, device=p.device)


def _layout_ok(t, p, staged):
    return t.is_contiguous() if staged else t.stride() == p.stride()


def _conform(t, p, dtype, staged, what):
    """t converted to dtype, p's device and the layout fusedopt needs (a copy only if needed)."""
    if tuple(t.shape) != tuple(p.shape):
        raise ValueError("state %r has shape %s but its parameter has shape %s"
                         % (what, tuple(t.shape), tuple(p.shape)))
    if t.dtype == dtype and t.device == p.device and _layout_ok(t, p, staged):
        return t
    out = _alloc(p, dtype, staged)
    out.copy_(t)
    return out


def _step_tensor(value):
    """state['step'] as torch.optim (1.13 / 2.x, not capturable) keeps it: a CPU float32 scalar
    tensor. Accepts plain numbers (older torch, RMSprop in 1.13) and device tensors."""
    if torch.is_tensor(value):
        if value.device.type == "cpu" and value.dtype == torch.float32 and value.dim() == 0:
            return value
        return torch.tensor(float(value.detach().reshape(-1)[0].item()))
    return torch.tensor(float(value))


def _destroy(cdll, handle):
    cdll.fopt_destroy(ctypes.c_void_p(handle))


# ---- devices for the GPU optimizer object ------------------------------------------------------

class CudaDevice:
    """How the GPU path reaches CUDA tensors: raw data pointers, torch's current stream.

    The GPU code path talks to its device only through this interface, so a test can drive it
    on libfusedopt's emulated device (python/tests/emu_device.py)."""

    raw = True  # ptr(t) is t.data_ptr(): the step loop calls that directly

    def __init__(self, lib):
        self.lib = lib

    def claims(self, t):
        return t.is_cuda

    def key(self, t):
        return t.get_device()

    def context(self, key):
        return torch.cuda.device(key)

    def stream(self, key):
        return torch.cuda.current_stream(key).cuda_stream

    def ptr(self, t):
        return t.data_ptr()

    # A device that must move data around a launch (the emulated one of the tests) records the
    # tensors ptr() hands out between begin() and collect(); resume(token) brings a bucket's
    # record back before its launch. Nothing to do on CUDA.
    def begin(self):
        pass

    def collect(self):
        return None

    def resume(self, token):
        pass

    def before_launch(self):
        pass

    def after_launch(self):
        pass

    def synchronize(self, key):
        # fopt_state_copy and fopt_set_step_count use cudaMemcpy (legacy default stream);
        # order them with every stream before torch or a step on another stream goes on.
        torch.cuda.synchronize(key)


class _View:
    """How one parameter is bound to a GPU optimizer object."""
    __slots__ = ("staged", "sp", "sg", "shape", "stride", "dtype", "numel", "code")


class _Bucket:
    """One fusedopt GPU optimizer object over parameters of one group and device that share a
    step count."""

    def __init__(self, opt, gi, group, dev, key, params, step):
        self.opt = weakref.proxy(opt)   # no reference cycle: the optimizer's __del__ frees us
        self.dev = dev
        self.lib = dev.lib
        self.key = key
        self.params = list(params)
        self.slots = opt._state_slots(group)
        self.state_dtype = group["state_dtype"]
        self.where = opt._where(gi, "CUDA" if isinstance(dev, CudaDevice) else "device")
        self.handle = None
        self.views = []
        n = len(self.params)
        self.arr = (L.Tensor * n)()
        self.bound = [(0, 0)] * n
        lib = self.lib
        dev.begin()
        for i, p in enumerate(self.params):
            rp, code, staged = opt._check_param(gi, group, p, p.grad)
            v = _View()
            v.staged, v.shape, v.stride, v.dtype = staged, tuple(p.shape), p.stride(), p.dtype
            v.numel, v.code = rp.numel(), code
            v.sp = v.sg = None
            if staged:
                v.sp = rp.contiguous().clone()
                v.sg = torch.empty_like(v.sp)
                v.sg.copy_(_real(p.grad))
                pp, gp = dev.ptr(v.sp), dev.ptr(v.sg)
            else:
                pp = dev.ptr(p)
                g = p.grad
                if g.stride() != p.stride():
                    v.sg = _alloc(p, p.dtype, False)
                    v.sg.copy_(g)
                    g = v.sg
                gp = dev.ptr(g)
            self.views.append(v)
            self.arr[i] = L.Tensor(pp, gp, v.numel, code, 0)
            self.bound[i] = (pp, gp)
        cfg = opt._config(lib, group, capturable=bool(group.get("capturable", False)))
        create = "fopt_adam_create" if opt._kind == "adam" else "fopt_rmsprop_create"
        h = ctypes.c_void_p()
        dev.before_launch()
        with dev.context(key):
            status = getattr(lib.cdll, create)(ctypes.byref(h), ctypes.byref(cfg), self.arr, n)
        dev.after_launch()
        if status != 0:
            opt._fail(lib, create, status, self.where, self.params, group)
        self.handle = h.value
        self._finalizer = weakref.finalize(self, _destroy, lib.cdll, self.handle)
        self.lr = float(group["lr"])
        self.wd = float(group["weight_decay"])
        self.scratch = torch.zeros(1, dtype=torch.int32, device=self.params[0].device)
        self.keepalive = None
        self.token = None
        self.staged_now = []
        # state: what state[p] holds moves into the object
        with dev.context(key):
            try:
                loaded = self._load(group, step)
            except BaseException:
                self.close()
                raise
        if loaded:
            dev.synchronize(key)

    def close(self):
        if self.handle is not None:
            self._finalizer()
            self.handle = None

    def _call(self, name, *args):
        status = getattr(self.lib.cdll, name)(*args)
        if status != 0:
            self.opt._fail(self.lib, name, status, self.where, self.params, None)

    def _load(self, group, step):
        any_copy = False
        mk_of = self.opt._master_key
        for i, p in enumerate(self.params):
            st = self.opt.state.get(p)
            if not st:
                continue
            v = self.views[i]
            tdt = torch.complex64 if p.is_complex() else self.state_dtype
            for key, slot in self.slots:
                t = st.get(key)
                if torch.is_tensor(t):
                    t = _conform(t, p, tdt, v.staged, key)
                    self._call("fopt_state_copy", self.handle, i, slot, t.data_ptr(), True)
                    any_copy = True
            mk = mk_of(group, p.dtype)
            t = st.get(mk) if mk else None
            if torch.is_tensor(t):
                t = _conform(t, p, torch.float32 if mk == "master" else torch.int16, v.staged, mk)
                self._call("fopt_state_copy", self.handle, i, L.SLOT_MASTER, t.data_ptr(), True)
                any_copy = True
        if step:
            self._call("fopt_set_step_count", self.handle, int(step))
            any_copy = True
        return any_copy

    def snapshot(self, group):
        """{param: state dict in torch's format}, copied out of the object."""
        lib = self.lib
        with self.dev.context(self.key):
            step = lib.cdll.fopt_step_count(self.handle)
            if step < 0:
                detail = lib.last_error()
                raise FusedOptError("%s: fopt_step_count failed: %s" % (self.where, detail),
                                    detail=detail, call="fopt_step_count")
            out = {}
            mk_of = self.opt._master_key
            for i, p in enumerate(self.params):
                v = self.views[i]
                d = {"step": torch.tensor(float(step))}
                tdt = torch.complex64 if v.dtype.is_complex else self.state_dtype

                def alloc(dtype):
                    # the layout the object was built on (the parameter may have been replaced)
                    if v.staged:
                        return torch.empty(v.shape, dtype=dtype, device=p.device)
                    return torch.empty_strided(v.shape, v.stride, dtype=dtype, device=p.device)

                for key, slot in self.slots:
                    t = alloc(tdt)
                    self._call("fopt_state_copy", self.handle, i, slot, t.data_ptr(), False)
                    d[key] = t
                mk = mk_of(group, v.dtype)
                if mk:
                    t = alloc(torch.float32 if mk == "master" else torch.int16)
                    self._call("fopt_state_copy", self.handle, i, L.SLOT_MASTER, t.data_ptr(), False)
                    d[mk] = t
                out[p] = d
        self.dev.synchronize(self.key)
        return out

    def prepare(self, group):
        """Follows the parameters and gradients before a step: lr and weight decay, new
        addresses (rebinding in stream order), staged copies. Returns False, having changed no
        optimizer state, when a parameter changed shape, dtype or layout: the caller rebuilds."""
        dev, h = self.dev, self.handle
        lr, wd = float(group["lr"]), float(group["weight_decay"])
        if lr != self.lr:
            self._call("fopt_set_group_lr", h, 0, lr)
            self.lr = lr
        if wd != self.wd:
            self._call("fopt_set_group_weight_decay", h, 0, wd)
            self.wd = wd
        dev.begin()
        changed = False
        staged = []
        bound, arr, views = self.bound, self.arr, self.views
        # the hot loop: two pointers per parameter; everything else only when one moved
        ptr = torch.Tensor.data_ptr if dev.raw else dev.ptr
        for i, p in enumerate(self.params):
            v = views[i]
            g = p.grad
            if v.staged:
                if p.dtype != v.dtype or tuple(p.shape) != v.shape:
                    return False
                if g is not v.sg:
                    self.opt._check_grad(p, g, self.where)
                v.sp.copy_(_real(p))
                v.sg.copy_(_real(g))
                staged.append((p, v))
                pp, gp = ptr(v.sp), ptr(v.sg)
            else:
                pp = ptr(p)
                if v.sg is not None:
                    v.sg.copy_(g)
                    gp = ptr(v.sg)
                else:
                    gp = ptr(g)
            b = bound[i]
            if pp != b[0] or gp != b[1]:
                if not v.staged:
                    if p.dtype != v.dtype or tuple(p.shape) != v.shape or p.stride() != v.stride:
                        return False     # a new tensor behind the parameter: rebuild
                    self.opt._check_grad(p, g, self.where)
                    if v.sg is None and g.stride() != v.stride:
                        v.sg = _alloc(p, p.dtype, False)   # grads in another layout: a copy
                        v.sg.copy_(g)
                        gp = ptr(v.sg)
                arr[i].param = pp
                arr[i].grad = gp
                bound[i] = (pp, gp)
                changed = True
        if changed:
            with dev.context(self.key):
                self._call("fopt_rebind", h, self.arr, len(self.params), dev.stream(self.key))
        self.staged_now = staged
        self.token = dev.collect()
        return True

    def launch(self, grad_scale, sq_sum):
        """Enqueues the step on the current stream (after prepare())."""
        dev, lib, h = self.dev, self.lib, self.handle
        dev.resume(self.token)
        opts = None
        keep = []
        if grad_scale is not None or sq_sum is not None:
            opts = L.StepOptions()
            if grad_scale is not None:
                gs = grad_scale.detach().to(device=self.params[0].device, dtype=torch.float32)
                gs = gs.reshape(-1)[:1].contiguous()
                keep.append(gs)
                opts.grad_scale = dev.ptr(gs)
            if sq_sum is not None:
                sq = sq_sum.to(device=self.params[0].device)
                keep.append(sq)
                opts.grad_sq_sum = dev.ptr(sq)
                opts.found_inf = dev.ptr(self.scratch)
        with dev.context(self.key):
            stream = dev.stream(self.key)
            dev.before_launch()
            status = lib.cdll.fopt_step_ex(h, ctypes.byref(opts) if opts is not None else None, stream)
            dev.after_launch()
        if status != 0:
            self.opt._fail(lib, "fopt_step_ex", status, self.where, self.params, None)
        for p, v in self.staged_now:
            _real(p).copy_(v.sp)
        self.keepalive = keep  # until the next step: the launch reads them in stream order


class _GpuRun:
    """The GPU optimizer objects of one param group on one device."""

    def __init__(self, group, dev, key, ids, cfgkey, buckets):
        self.group, self.dev, self.key = group, dev, key
        self.ids, self.cfgkey, self.buckets = ids, cfgkey, buckets

    def close(self):
        for b in self.buckets:
            b.close()
        self.buckets = []


class _CpuRun:
    """The cached fopt_host_tensor array of one param group's CPU parameters."""

    def __init__(self, group, params):
        self.group = group
        self.ids = [id(p) for p in params]
        self.arr = (L.HostTensor * len(params))()
        self.sig = [None] * len(params)


# ---- the optimizer ----------------------------------------------------------------------------

class FusedOptimizer(Optimizer):
    """Base of Adam, AdamW and RMSprop. Not for direct use."""

    # torch.amp / torch.cuda.amp GradScaler: call step() directly and hand over grad_scale and
    # found_inf (torch 2.x sets them as attributes of the optimizer; keywords work too).
    _step_supports_amp_scaling = True
    _kind = None          # "adam" or "rmsprop"
    _decoupled = False
    _sparse_msg = None

    def __init__(self, params, defaults, **fopt_options):
        """defaults: the torch optimizer's; fopt_options: the fusedopt options of _PRECISION_DOC.
        Both are checked (the same checks and texts as torch's, then fusedopt's)."""
        defaults.update(fopt_options)
        self._validate(defaults)
        self._check_precision(defaults)
        self._init_runtime()
        super().__init__(params, defaults)

    # -- runtime caches (never pickled) --
    def _init_runtime(self):
        self._cpu_runs = {}
        self._gpu_runs = {}
        if not hasattr(self, "_fopt_device"):
            self._fopt_device = None

    def _drop_runtimes(self, spill=False):
        runs = getattr(self, "_gpu_runs", None)
        if runs:
            for run in list(runs.values()):
                if spill:
                    self._spill(run)
                else:
                    run.close()
        self._gpu_runs = {}
        self._cpu_runs = {}

    def __del__(self):
        try:
            self._drop_runtimes()
        except Exception:
            pass

    def _where(self, gi, device):
        return "fusedopt.torch.%s.step (param group %d, %s)" % (type(self).__name__, gi, device)

    def _fail(self, lib, name, status, where, params, group):
        detail = lib.last_error()
        sname = lib.cdll.fopt_status_string(status).decode()
        m = re.search(r"tensor (\d+)", detail)
        extra = ""
        if m and params is not None and int(m.group(1)) < len(params):
            p = params[int(m.group(1))]
            extra = " [tensor %s is a parameter of shape %s, dtype %s]" % (
                m.group(1), tuple(p.shape), p.dtype)
        raise FusedOptError("%s: %s failed: %s: %s%s" % (where, name, sname, detail, extra),
                            status=status, status_name=sname, detail=detail, call=name)

    # -- validation --
    @staticmethod
    def _check_precision(d):
        d["state_dtype"] = _state_dtype(d.get("state_dtype"))
        if d.get("master_remainder") and not d.get("master_weights"):
            raise ValueError("master_remainder=True needs master_weights=True")
        if d.get("stochastic_rounding") and d.get("master_weights"):
            raise ValueError("stochastic_rounding=True rounds bf16 parameters that have no fp32 "
                             "master copy; it cannot be combined with master_weights=True")
        if d.get("differentiable"):
            raise ValueError("fusedopt does not support differentiable=True")
        seed = d.get("rounding_seed", 0)
        if not (isinstance(seed, int) and 0 <= seed < 2 ** 64):
            raise ValueError("Invalid rounding_seed: %r (an integer in [0, 2**64))" % (seed,))

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._validate(group)      # same checks and texts as the constructor's
        self._check_precision(group)

    def __setstate__(self, state):
        self._drop_runtimes()
        super().__setstate__(state)
        self._init_runtime()
        for group in self.param_groups:
            for k, v in self.defaults.items():
                group.setdefault(k, v)
            group["state_dtype"] = _state_dtype(group.get("state_dtype"))
        for st in self.state.values():
            if isinstance(st, dict) and "step" in st:
                st["step"] = _step_tensor(st["step"])

    def __getstate__(self):
        state = defaultdict(dict)
        state.update(self.state)
        state.update(self._gpu_snapshots())
        return {"defaults": self.defaults, "state": state, "param_groups": self.param_groups}

    # -- torch.optim API --
    def zero_grad(self, set_to_none: bool = True):
        """As torch.optim.Optimizer.zero_grad; set_to_none defaults to True (torch 2.x). New
        gradient tensors are rebound to the GPU optimizer object at the next step."""
        super().zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        """torch.optim's format; for CUDA parameters the moments are copied out of the GPU
        optimizer object (synchronises with the device)."""
        snaps = self._gpu_snapshots()
        saved = {}
        for p, d in snaps.items():
            saved[p] = self.state.get(p, _MISSING)
            self.state[p] = d
        try:
            return super().state_dict()
        finally:
            for p, old in saved.items():
                if old is _MISSING:
                    self.state.pop(p, None)
                else:
                    self.state[p] = old

    def load_state_dict(self, state_dict):
        """torch.optim's format (from fusedopt.torch or torch.optim). Tensors keep the dtype
        fusedopt needs (fp32 master copies, int16 remainders, the state_dtype of the group)
        instead of being cast to the parameter's dtype as torch.optim would."""
        held = {}
        packed = {}
        for k, v in state_dict["state"].items():
            if isinstance(v, dict):
                packed[k] = {kk: vv for kk, vv in v.items() if kk == "step" or not torch.is_tensor(vv)}
                held[k] = {kk: vv for kk, vv in v.items() if kk != "step" and torch.is_tensor(vv)}
            else:
                packed[k] = v
        sd = dict(state_dict)
        sd["state"] = packed
        # GPU state back into self.state first: if torch rejects the state dict, nothing is lost
        self._drop_runtimes(spill=True)
        super().load_state_dict(sd)
        id_map = dict(zip(itertools.chain.from_iterable(g["params"] for g in state_dict["param_groups"]),
                          itertools.chain.from_iterable(g["params"] for g in self.param_groups)))
        group_of = {}
        for g in self.param_groups:
            for p in g["params"]:
                group_of[id(p)] = g
        for k, tensors in held.items():
            p = id_map.get(k)
            if p is None:
                continue
            group = group_of[id(p)]
            st = self.state[p]
            state_keys = dict(self._state_slots_all())
            for kk, vv in tensors.items():
                if kk == "master":
                    dt = torch.float32
                elif kk == "master_remainder":
                    dt = torch.int16
                elif kk in state_keys:
                    dt = torch.complex64 if p.is_complex() else group["state_dtype"]
                else:
                    dt = vv.dtype
                st[kk] = vv.detach().to(device=p.device, dtype=dt, copy=True)

    @torch.no_grad()
    def step(self, closure=None, *, grad_scale=None, found_inf=None, **kwargs):
        """One optimizer step over every parameter with a gradient.

        closure: as in torch.optim (re-evaluates the model, returns the loss).
        grad_scale: AMP loss scale; gradients are divided by it inside the fused step.
        found_inf: a tensor; when it is non-zero nothing is updated (states, step counts).
        GradScaler passes both: as attributes of the optimizer in torch 2.x, through the
        grad_scaler keyword in torch 1.x (accepted here through **kwargs, so that torch 2.x
        keeps to the attributes)."""
        grad_scaler = kwargs.pop("grad_scaler", None)
        if kwargs:
            raise TypeError("step() got an unexpected keyword argument %r" % next(iter(kwargs)))
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if grad_scale is None:
            grad_scale = getattr(self, "grad_scale", None)
        if found_inf is None:
            found_inf = getattr(self, "found_inf", None)
        if grad_scaler is not None and found_inf is None:
            grad_scale, found_inf = self._from_grad_scaler(grad_scaler)

        plans = []
        any_cpu = False
        fdev = self._fopt_device
        for gi, group in enumerate(self.param_groups):
            cpu, gpu = [], {}
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise RuntimeError(self._sparse_msg)
                if fdev is not None and fdev.claims(p):
                    dev = fdev
                elif p.is_cuda:
                    dev = self._cuda_device()
                elif p.device.type == "cpu":
                    cpu.append(p)
                    continue
                else:
                    raise TypeError("fusedopt.torch.%s: a parameter is on device %s; fusedopt "
                                    "steps CPU and CUDA tensors" % (type(self).__name__, p.device))
                k = dev.key(p)
                entry = gpu.get((id(dev), k))
                if entry is None:
                    entry = gpu[(id(dev), k)] = (dev, k, [])
                entry[2].append(p)
            any_cpu = any_cpu or bool(cpu)
            plans.append((gi, group, cpu, gpu))

        cpu_skip = False
        if any_cpu and found_inf is not None:
            cpu_skip = bool(found_inf.detach().ne(0).any().item())
        sq_sum = None
        if found_inf is not None and any(plan[3] for plan in plans):
            # torch's found_inf is an input (skip the step); fusedopt's is an output. A non-finite
            # grad_sq_sum makes fusedopt skip the step exactly as when it finds an inf itself,
            # without a pass over the gradients and without a host synchronisation.
            fi = found_inf.detach().reshape(-1)
            sq_sum = torch.zeros(1, dtype=torch.float64, device=fi.device)
            sq_sum.masked_fill_(fi.ne(0).any().reshape(1), _INF)

        for gi, group, cpu, gpu in plans:
            if cpu and not cpu_skip:
                self._cpu_step(gi, group, cpu, grad_scale)
            for dev, key, params in gpu.values():
                self._gpu_step(gi, group, dev, key, params, grad_scale, sq_sum)
        return loss

    def _from_grad_scaler(self, scaler):
        """torch 1.x GradScaler (grad_scaler= keyword): (grad_scale, found_inf) as torch 2.x
        would set them."""
        st = scaler._per_optimizer_states[id(self)]
        stage = getattr(st.get("stage"), "name", "")
        if stage != "UNSCALED":   # grads still scaled: find infs now, unscale in the step
            scaler._check_inf_per_device(self)
            grad_scale = scaler._get_scale_async()
        else:
            grad_scale = None
        infs = list(st["found_inf_per_device"].values())
        dev = infs[0].device if infs else torch.device("cpu")
        found_inf = sum(t.to(dev) for t in infs) if infs else None
        return grad_scale, found_inf

    # -- per-optimizer pieces (subclasses) --
    _slot_names = ()  # the state keys of the library's state slots 0, 1, 2 (fopt_slot)

    def _validate(self, d):
        raise NotImplementedError

    def _slot_used(self, group, slot):
        raise NotImplementedError

    def _fill_config(self, cfg, group):
        """The hyper-parameters of this optimizer only (see _config)."""
        raise NotImplementedError

    def _own_key(self, group):
        """The hyper-parameters of this optimizer only that the library keeps per optimizer object
        (see _config_key)."""
        raise NotImplementedError

    def _state_slots(self, group):
        return [(key, i) for i, key in enumerate(self._slot_names) if self._slot_used(group, i)]

    @classmethod
    def _state_slots_all(cls):
        return [(key, i) for i, key in enumerate(cls._slot_names)]

    def _config(self, lib, group, capturable=False):
        cfg = getattr(lib, self._kind + "_config")()
        cfg.lr = float(group["lr"])
        cfg.eps = float(group["eps"])
        cfg.weight_decay = float(group["weight_decay"])
        cfg.maximize = bool(group["maximize"])
        self._fill_config(cfg, group)
        self._precision(cfg, group)
        cfg.capturable = capturable
        return cfg

    def _config_key(self, group):
        return self._own_key(group) + (bool(group["maximize"]), bool(group.get("capturable", False)),
                                       self._precision_key(group))

    def _precision(self, cfg, group):
        pr = cfg.precision
        pr.state_dtype = L.BFLOAT16 if group["state_dtype"] == torch.bfloat16 else L.FLOAT32
        pr.master_weights = bool(group["master_weights"])
        pr.stochastic_rounding = bool(group["stochastic_rounding"])
        pr.master_remainder = bool(group["master_remainder"])
        pr.seed = int(group["rounding_seed"])

    @staticmethod
    def _precision_key(group):
        return (group["state_dtype"], bool(group["master_weights"]), bool(group["master_remainder"]),
                bool(group["stochastic_rounding"]), int(group["rounding_seed"]))

    @staticmethod
    def _master_key(group, dtype):
        """Which state key holds the master copy of a parameter of this dtype, or None."""
        if dtype == torch.float32 or dtype.is_complex or not group["master_weights"]:
            return None
        if group["master_remainder"] and dtype == torch.bfloat16:
            return "master_remainder"
        return "master"

    # -- parameter checks --
    def _cuda_device(self):
        dev = getattr(self, "_cuda_dev", None)
        if dev is None:
            dev = self._cuda_dev = CudaDevice(L.library())
        return dev

    def _check_grad(self, p, g, where):
        if g.device != p.device:
            raise RuntimeError("%s: a parameter on %s has its gradient on %s; fusedopt reads both "
                               "on the parameter's device" % (where, p.device, g.device))
        if g.dtype != p.dtype:
            raise TypeError("%s: a parameter of dtype %s has a gradient of dtype %s; fusedopt "
                            "reads the gradient in the parameter's dtype" % (where, p.dtype, g.dtype))
        if g.shape != p.shape:
            raise RuntimeError("%s: a parameter of shape %s has a gradient of shape %s"
                               % (where, tuple(p.shape), tuple(g.shape)))

    def _check_param(self, gi, group, p, g):
        """(real view of p, fopt dtype code, staged) after checking p and its gradient."""
        where = self._where(gi, str(p.device))
        dt = p.dtype
        if dt.is_complex:
            if dt != torch.complex64:
                raise TypeError("%s: parameter of dtype %s; fusedopt steps float32, float16 and "
                                "bfloat16 parameters, and complex64 as its float32 real view"
                                % (where, dt))
            if group["state_dtype"] != torch.float32:
                raise TypeError("%s: complex parameters need state_dtype=torch.float32 (their "
                                "state is complex64, as in torch.optim)" % where)
            code = L.FLOAT32
        else:
            code = _CODE.get(dt)
            if code is None:
                raise TypeError("%s: parameter of dtype %s; fusedopt steps float32, float16 and "
                                "bfloat16 parameters (and complex64)" % (where, dt))
        if dt == torch.float16:
            if group["stochastic_rounding"]:
                raise TypeError("%s: stochastic_rounding is for bfloat16 parameters; this group "
                                "has a float16 one" % where)
            if group["master_remainder"]:
                raise TypeError("%s: master_remainder is for bfloat16 parameters; this group has "
                                "a float16 one (use master_weights alone)" % where)
        self._check_grad(p, g, where)
        rp = _real(p)
        return rp, code, not _is_dense(p)

    def _ensure_state(self, p, st, group, staged):
        """Creates or converts state[p]'s tensors into what the C call needs."""
        if "step" not in st:
            st["step"] = torch.tensor(0.0)
        elif not (torch.is_tensor(st["step"]) and st["step"].device.type == "cpu"
                  and st["step"].dtype == torch.float32 and st["step"].dim() == 0):
            st["step"] = _step_tensor(st["step"])
        tdt = torch.complex64 if p.is_complex() else group["state_dtype"]
        for key, _ in self._state_slots(group):
            t = st.get(key)
            if t is None:
                t = _alloc(p, tdt, staged).zero_()
            else:
                t = _conform(t, p, tdt, staged, key)
            st[key] = t
        mk = self._master_key(group, p.dtype)
        if mk == "master":
            t = st.get("master")
            st["master"] = (_alloc(p, torch.float32, staged).copy_(p) if t is None
                            else _conform(t, p, torch.float32, staged, "master"))
        elif mk == "master_remainder":
            t = st.get("master_remainder")
            st["master_remainder"] = (_alloc(p, torch.int16, staged).zero_() if t is None
                                      else _conform(t, p, torch.int16, staged, "master_remainder"))
        return mk

    # -- CPU path --
    def _cpu_step(self, gi, group, params, grad_scale):
        lib = L.library()
        run = self._cpu_runs.get(gi)
        if run is None or run.group is not group or run.ids != [id(p) for p in params]:
            run = self._cpu_runs[gi] = _CpuRun(group, params)
        slots = self._state_slots(group)
        keys = [k for k, _ in slots]
        arr = run.arr
        steps = []
        keep = []   # temporaries the C call reads
        post = []   # (param real view, stepped contiguous copy)
        for i, p in enumerate(params):
            g = p.grad
            st = self.state[p]
            sig = run.sig[i]
            if sig is not None:
                pp, gp, gdt, st_obj, tens = sig
                if (p.data_ptr() == pp and g.data_ptr() == gp and g.dtype == gdt and st is st_obj
                        and all(st.get(k) is t for k, t in tens)):
                    steps.append(st["step"])
                    continue
            run.sig[i] = None
            rp, code, staged = self._check_param(gi, group, p, g)
            mk = self._ensure_state(p, st, group, staged)
            e = arr[i]
            rg = _real(g)
            direct = not staged and rg.stride() == rp.stride()
            if staged:
                pc, gc = rp.contiguous(), rg.contiguous()
                keep += [pc, gc]
                post.append((rp, pc))
            elif not direct:
                pc = rp
                gc = torch.empty_strided(rp.shape, rp.stride(), dtype=rg.dtype).copy_(rg)
                keep.append(gc)
            else:
                pc, gc = rp, rg
            e.param, e.grad, e.numel, e.dtype = pc.data_ptr(), gc.data_ptr(), rp.numel(), code
            e.master = st[mk].data_ptr() if mk else None
            for j in range(3):
                e.state[j] = None
            for key, slot in slots:
                e.state[slot] = st[key].data_ptr()
            if direct:
                tracked = ["step"] + keys + ([mk] if mk else [])
                run.sig[i] = (p.data_ptr(), g.data_ptr(), g.dtype, st,
                              tuple((k, st[k]) for k in tracked))
            steps.append(st["step"])

        cfg = self._config(lib, group)
        opts = None
        if grad_scale is not None:
            gs = grad_scale.detach().to(device="cpu", dtype=torch.float32).reshape(-1)[:1].contiguous()
            keep.append(gs)
            opts = L.StepOptions()
            opts.grad_scale = gs.data_ptr()
        name = "fopt_adam_step_cpu_multi" if self._kind == "adam" else "fopt_rmsprop_step_cpu_multi"
        fn = getattr(lib.cdll, name)
        values = torch.stack(steps).tolist() if len(steps) > 1 else [float(steps[0])]
        first = values[0]
        if all(v == first for v in values):
            parts = [(first, arr, params)]
        else:  # parameters at different step counts (rare): one call per count
            by = {}
            for i, v in enumerate(values):
                by.setdefault(v, []).append(i)
            parts = [(v, (L.HostTensor * len(idx))(*[arr[i] for i in idx]), [params[i] for i in idx])
                     for v, idx in by.items()]
        optp = ctypes.byref(opts) if opts is not None else None
        for v, a, ps in parts:
            status = fn(ctypes.byref(cfg), int(v) + 1, a, len(ps), optp)
            if status != 0:
                self._fail(lib, name, status, self._where(gi, "CPU"), ps, group)
        for rp, pc in post:
            rp.copy_(pc)
        torch._foreach_add_(steps, 1)

    # -- GPU path --
    def _gpu_step(self, gi, group, dev, key, params, grad_scale, sq_sum):
        rk = (gi, id(dev), key)
        ids = [id(p) for p in params]
        cfgkey = self._config_key(group)
        run = self._gpu_runs.get(rk)
        if run is not None and (run.group is not group or run.ids != ids or run.cfgkey != cfgkey):
            self._spill(run)
            run = None
        if run is None:
            run = self._hydrate(gi, group, dev, key, params, ids, cfgkey)
            self._gpu_runs[rk] = run
        for b in run.buckets:
            if not b.prepare(group):
                # a parameter changed shape, dtype or layout: rebuild over the new tensors
                # (no bucket has stepped yet)
                self._spill(run)
                run = self._hydrate(gi, group, dev, key, params, ids, cfgkey)
                self._gpu_runs[rk] = run
                for b2 in run.buckets:
                    if not b2.prepare(group):
                        raise RuntimeError("fusedopt: cannot bind the parameters of param group "
                                           "%d after a rebuild" % gi)
                break
        for b in run.buckets:
            b.launch(grad_scale, sq_sum)

    def _hydrate(self, gi, group, dev, key, params, ids, cfgkey):
        by_step = {}
        for p in params:
            st = self.state.get(p)
            s = st.get("step") if st else None
            s = int(float(s)) if s is not None else 0
            by_step.setdefault(s, []).append(p)
        buckets = []
        try:
            for s, ps in by_step.items():
                buckets.append(_Bucket(self, gi, group, dev, key, ps, s))
        except BaseException:
            for b in buckets:
                b.close()
            raise
        for p in params:  # the objects own the state now
            self.state.pop(p, None)
        return _GpuRun(group, dev, key, ids, cfgkey, buckets)

    def _spill(self, run):
        """Copies the objects' state back into self.state and frees the objects."""
        group = run.group
        for b in run.buckets:
            self.state.update(b.snapshot(group))
        run.close()
        for k, v in list(self._gpu_runs.items()):
            if v is run:
                del self._gpu_runs[k]

    def _gpu_snapshots(self):
        out = {}
        for run in getattr(self, "_gpu_runs", {}).values():
            for b in run.buckets:
                out.update(b.snapshot(run.group))
        return out


# ---- Adam / AdamW ------------------------------------------------------------------------------

class _AdamBase(FusedOptimizer):
    _kind = "adam"
    _slot_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr, betas, eps, weight_decay, amsgrad, foreach, maximize,
                 capturable, differentiable, fused, master_weights, master_remainder,
                 stochastic_rounding, state_dtype, rounding_seed, decoupled=None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused)
        if decoupled is not None:   # torch 2.x's Adam(decoupled_weight_decay=...)
            defaults["decoupled_weight_decay"] = decoupled
        super().__init__(params, defaults, master_weights=master_weights,
                         master_remainder=master_remainder, stochastic_rounding=stochastic_rounding,
                         state_dtype=state_dtype, rounding_seed=rounding_seed)

    def _validate(self, d):
        lr, eps, betas, wd = d["lr"], d["eps"], d["betas"], d["weight_decay"]
        if not 0.0 <= lr:
            raise ValueError("Invalid learning rate: {}".format(lr))
        if not 0.0 <= eps:
            raise ValueError("Invalid epsilon value: {}".format(eps))
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError("Invalid beta parameter at index 0: {}".format(betas[0]))
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError("Invalid beta parameter at index 1: {}".format(betas[1]))
        if not 0.0 <= wd:
            raise ValueError("Invalid weight_decay value: {}".format(wd))

    def _slot_used(self, group, slot):
        return (True, True, bool(group["amsgrad"]))[slot]

    def _fill_config(self, cfg, group):
        b1, b2 = group["betas"]
        cfg.beta1, cfg.beta2 = float(b1), float(b2)
        cfg.decoupled_weight_decay = self._is_decoupled(group)
        cfg.amsgrad = bool(group["amsgrad"])

    def _is_decoupled(self, group):
        # AdamW always; Adam when the group says so (torch 2.x: decoupled_weight_decay=True)
        return self._decoupled or bool(group.get("decoupled_weight_decay", False))

    def _own_key(self, group):
        b1, b2 = group["betas"]
        return (float(b1), float(b2), float(group["eps"]), bool(group["amsgrad"]),
                self._is_decoupled(group))


_PRECISION_DOC = """
    fusedopt options (keyword-only; per param group like every hyper-parameter):
        master_weights (bool): float16/bfloat16 parameters keep an fp32 master copy
            (state['master']), stepped in fp32 and rounded into the parameter (default False).
        master_remainder (bool): with master_weights, bfloat16 parameters keep only 16 extra bits
            (state['master_remainder'], int16) that with the parameter give the fp32 master
            exactly (default False).
        stochastic_rounding (bool): bfloat16 parameters without master weights are rounded
            stochastically instead of to nearest-even (default False).
        state_dtype (torch.dtype): storage of the optimizer state, torch.float32 (default) or
            torch.bfloat16.
        rounding_seed (int): seed of the stochastic rounding (default 0).
    Accepted for compatibility and ignored: foreach, fused (fusedopt is always fused).
    capturable=True makes the GPU object keep lr and step count on the device.
"""


class Adam(_AdamBase):
    __doc__ = """torch.optim.Adam on fusedopt's fused kernels (same arguments and defaults).

    Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
         maximize=False, master_weights=False, stochastic_rounding=False, ...)
    weight_decay is L2 added to the gradient, as in torch.optim.Adam; with
    decoupled_weight_decay=True (torch >= 2.6's keyword) it is AdamW's decoupled decay.
    """ + _PRECISION_DOC
    _decoupled = False
    _sparse_msg = "Adam does not support sparse gradients, please consider SparseAdam instead"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 master_weights=False, master_remainder=False, stochastic_rounding=False,
                 state_dtype=torch.float32, rounding_seed=0):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach, maximize,
                         capturable, differentiable, fused, master_weights, master_remainder,
                         stochastic_rounding, state_dtype, rounding_seed,
                         decoupled=decoupled_weight_decay)


class AdamW(_AdamBase):
    __doc__ = """torch.optim.AdamW on fusedopt's fused kernels (same arguments and defaults).

    AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
          maximize=False, master_weights=False, stochastic_rounding=False, ...)
    Decoupled weight decay: p *= 1 - lr * weight_decay before the Adam update.
    """ + _PRECISION_DOC
    _decoupled = True
    _sparse_msg = "AdamW does not support sparse gradients"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, master_weights=False, master_remainder=False,
                 stochastic_rounding=False, state_dtype=torch.float32, rounding_seed=0):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach, maximize,
                         capturable, differentiable, fused, master_weights, master_remainder,
                         stochastic_rounding, state_dtype, rounding_seed)


# ---- RMSprop -----------------------------------------------------------------------------------

class RMSprop(FusedOptimizer):
    __doc__ = """torch.optim.RMSprop on fusedopt's fused kernels (same arguments and defaults).

    RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
            *, maximize=False, master_weights=False, stochastic_rounding=False, ...)
    alpha must be in [0, 1] (torch only checks >= 0). Centered RMSprop clamps a variance that
    rounding leaves slightly negative at 0 where torch produces NaN (docs/SEMANTICS.md).
    """ + _PRECISION_DOC
    _kind = "rmsprop"
    _slot_names = ("square_avg", "momentum_buffer", "grad_avg")
    _sparse_msg = "RMSprop does not support sparse gradients"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, foreach=None, maximize=False, differentiable=False,
                 capturable=False, master_weights=False, master_remainder=False,
                 stochastic_rounding=False, state_dtype=torch.float32, rounding_seed=0):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, master_weights=master_weights,
                         master_remainder=master_remainder, stochastic_rounding=stochastic_rounding,
                         state_dtype=state_dtype, rounding_seed=rounding_seed)

    def _validate(self, d):
        lr, eps, mom, wd, alpha = d["lr"], d["eps"], d["momentum"], d["weight_decay"], d["alpha"]
        if not 0.0 <= lr:
            raise ValueError("Invalid learning rate: {}".format(lr))
        if not 0.0 <= eps:
            raise ValueError("Invalid epsilon value: {}".format(eps))
        if not 0.0 <= mom:
            raise ValueError("Invalid momentum value: {}".format(mom))
        if not 0.0 <= wd:
            raise ValueError("Invalid weight_decay value: {}".format(wd))
        if not 0.0 <= alpha:
            raise ValueError("Invalid alpha value: {}".format(alpha))
        if not alpha <= 1.0:
            raise ValueError("Invalid alpha value: {} (fusedopt needs 0 <= alpha <= 1)".format(alpha))

    def _slot_used(self, group, slot):
        return (True, group["momentum"] > 0, bool(group["centered"]))[slot]

    def _fill_config(self, cfg, group):
        cfg.alpha = float(group["alpha"])
        cfg.momentum = float(group["momentum"])
        cfg.centered = bool(group["centered"])

    def _own_key(self, group):
        return (float(group["alpha"]), float(group["eps"]), float(group["momentum"]),
                bool(group["centered"]))
