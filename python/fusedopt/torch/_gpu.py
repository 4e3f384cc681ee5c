"""The GPU path: fusedopt's GPU optimizer objects over a device's parameters.

The parameters of one device are bound to as few objects as the library allows: one object holds
every param group (up to FOPT_MAX_GROUPS) whose parameters share a step count and every
hyper-parameter the library keeps per object (betas or alpha/momentum, eps, AMSGrad, centered,
maximize, decoupled weight decay, capturable, the precision options); lr and weight decay are the
library's per-group values. So the usual decay / no-decay split is one launch per step. Groups
with stochastic rounding keep their own objects: its random bits depend on a tensor's index,
which must be the one the CPU path gives it (its index in the group).

The objects own the optimizer state while they live (opt.state holds none for their parameters);
they are rebuilt, the state carried over, when the set of parameters with a gradient, the param
groups or a shared hyper-parameter changes."""
import ctypes
import weakref

import torch

from .. import _lib as L
from .._lib import FusedOptError
from ._devices import CudaDevice
from ._layout import alloc, conform, real

__all__ = ["GpuObject", "DeviceRun", "GpuPath"]


def _destroy(cdll, handle):
    cdll.fopt_destroy(ctypes.c_void_p(handle))


class _View:
    """How one parameter is bound to a GPU optimizer object."""
    __slots__ = ("staged", "sp", "sg", "shape", "stride", "dtype", "numel", "code")


class GpuObject:
    """One GPU optimizer object. members: [(param group index, group, params)], groups that the
    library can share (same step count, same shared hyper-parameters); member j is library group
    j."""

    def __init__(self, opt, members, dev, key, step):
        self.opt = weakref.proxy(opt)   # no reference cycle: the optimizer's __del__ frees us
        self.dev, self.lib, self.key = dev, dev.lib, key
        self.gis = [gi for gi, _, _ in members]
        self.groups = [g for _, g, _ in members]
        self.params = [p for _, _, ps in members for p in ps]
        group = self.groups[0]   # every member's shared settings (precision, state slots)
        self.slots = opt._state_slots(group)
        self.state_dtype = group["state_dtype"]
        self.where = opt._where(self.gis, "CUDA" if isinstance(dev, CudaDevice) else "device")
        self.handle = None
        n = len(self.params)
        self.arr = (L.Tensor * n)()
        self.bound = [(0, 0)] * n
        self.views = []
        dev.begin()
        i = 0
        for j, (gi, g, ps) in enumerate(members):
            for p in ps:
                pp, gp = self._bind(opt, gi, g, p)
                self.arr[i] = L.Tensor(pp, gp, self.views[i].numel, self.views[i].code, j)
                self.bound[i] = (pp, gp)
                i += 1
        self._create(opt, group)
        self.lr = [float(group["lr"])] * len(self.groups)
        self.wd = [float(group["weight_decay"])] * len(self.groups)
        self.scratch = torch.zeros(1, dtype=torch.int32, device=self.params[0].device)
        self.keepalive = None
        self.token = None
        self.staged_now = []
        # the other groups' lr and weight decay; then what state[p] holds moves into the object
        with dev.context(key):
            try:
                self._follow_groups()
                loaded = self._load(step)
            except BaseException:
                self.close()
                raise
        if loaded:
            dev.synchronize(key)

    def _bind(self, opt, gi, group, p):
        """Checks p, records its _View; the (param, grad) device pointers to bind."""
        dev = self.dev
        rp, code, staged = opt._check_param(gi, group, p, p.grad)
        v = _View()
        v.staged, v.shape, v.stride, v.dtype = staged, tuple(p.shape), p.stride(), p.dtype
        v.numel, v.code = rp.numel(), code
        v.sp = v.sg = None
        self.views.append(v)
        if staged:
            v.sp = rp.contiguous().clone()
            v.sg = torch.empty_like(v.sp)
            v.sg.copy_(real(p.grad))
            return dev.ptr(v.sp), dev.ptr(v.sg)
        g = p.grad
        if g.stride() != p.stride():
            v.sg = alloc(p, p.dtype, False)
            v.sg.copy_(g)
            g = v.sg
        return dev.ptr(p), dev.ptr(g)

    def _create(self, opt, group):
        dev, lib = self.dev, self.lib
        cfg = opt._config(lib, group, capturable=bool(group.get("capturable", False)))
        name = opt._c_create
        h = ctypes.c_void_p()
        dev.before_launch()
        with dev.context(self.key):
            status = getattr(lib.cdll, name)(ctypes.byref(h), ctypes.byref(cfg), self.arr,
                                              len(self.params))
        dev.after_launch()
        if status != 0:
            opt._fail(lib, name, status, self.where, self.params)
        self.handle = h.value
        self._finalizer = weakref.finalize(self, _destroy, lib.cdll, self.handle)

    def close(self):
        if self.handle is not None:
            self._finalizer()
            self.handle = None

    def _call(self, name, *args):
        status = getattr(self.lib.cdll, name)(*args)
        if status != 0:
            self.opt._fail(self.lib, name, status, self.where, self.params)

    def _follow_groups(self):
        """Each library group's lr and weight decay from its param group (the library calls only
        for values that changed)."""
        h = self.handle
        for j, group in enumerate(self.groups):
            lr, wd = float(group["lr"]), float(group["weight_decay"])
            if lr != self.lr[j]:
                self._call("fopt_set_group_lr", h, j, lr)
                self.lr[j] = lr
            if wd != self.wd[j]:
                self._call("fopt_set_group_weight_decay", h, j, wd)
                self.wd[j] = wd

    def _master_key(self, dtype):
        return self.opt._master_key(self.groups[0], dtype)

    def _load(self, step):
        any_copy = False
        for i, p in enumerate(self.params):
            st = self.opt.state.get(p)
            if not st:
                continue
            staged = self.views[i].staged
            tdt = torch.complex64 if p.is_complex() else self.state_dtype
            for key, slot in self.slots:
                t = st.get(key)
                if torch.is_tensor(t):
                    t = conform(t, p, tdt, staged, key)
                    self._call("fopt_state_copy", self.handle, i, slot, t.data_ptr(), True)
                    any_copy = True
            mk = self._master_key(p.dtype)
            t = st.get(mk) if mk else None
            if torch.is_tensor(t):
                t = conform(t, p, torch.float32 if mk == "master" else torch.int16, staged, mk)
                self._call("fopt_state_copy", self.handle, i, L.SLOT_MASTER, t.data_ptr(), True)
                any_copy = True
        if step:
            self._call("fopt_set_step_count", self.handle, int(step))
            any_copy = True
        return any_copy

    def snapshot(self):
        """{param: state dict in torch's format}, copied out of the object."""
        lib = self.lib
        with self.dev.context(self.key):
            step = lib.cdll.fopt_step_count(self.handle)
            if step < 0:
                detail = lib.last_error()
                raise FusedOptError("%s: fopt_step_count failed: %s" % (self.where, detail),
                                    detail=detail, call="fopt_step_count")
            out = {}
            for i, p in enumerate(self.params):
                v = self.views[i]
                d = {"step": torch.tensor(float(step))}
                tdt = torch.complex64 if v.dtype.is_complex else self.state_dtype
                keys = list(self.slots)
                mk = self._master_key(v.dtype)
                if mk:
                    keys.append((mk, L.SLOT_MASTER))
                for key, slot in keys:
                    dt = tdt if slot != L.SLOT_MASTER else (
                        torch.float32 if mk == "master" else torch.int16)
                    # the layout the object was built on (the parameter may have been replaced)
                    t = alloc(p, dt, v.staged, v.shape, v.stride)
                    self._call("fopt_state_copy", self.handle, i, slot, t.data_ptr(), False)
                    d[key] = t
                out[p] = d
        self.dev.synchronize(self.key)
        return out

    def prepare(self):
        """Follows the param groups, parameters and gradients before a step: lr and weight decay,
        new addresses (rebinding in stream order), staged copies. Returns False, having changed no
        optimizer state, when a parameter changed shape, dtype or layout: the caller rebuilds."""
        dev = self.dev
        self._follow_groups()
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
                v.sp.copy_(real(p))
                v.sg.copy_(real(g))
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
                        v.sg = alloc(p, p.dtype, False)   # grads in another layout: a copy
                        v.sg.copy_(g)
                        gp = ptr(v.sg)
                arr[i].param = pp
                arr[i].grad = gp
                bound[i] = (pp, gp)
                changed = True
        if changed:
            with dev.context(self.key):
                self._call("fopt_rebind", self.handle, self.arr, len(self.params),
                           dev.stream(self.key))
        self.staged_now = staged
        self.token = dev.collect()
        return True

    def launch(self, grad_scale, sq_sum):
        """Enqueues the step on the current stream (after prepare())."""
        dev, lib = self.dev, self.lib
        dev.resume(self.token)
        opts = None
        keep = []
        device = self.params[0].device
        if grad_scale is not None or sq_sum is not None:
            opts = L.StepOptions()
            if grad_scale is not None:
                gs = grad_scale.detach().to(device=device, dtype=torch.float32)
                gs = gs.reshape(-1)[:1].contiguous()
                keep.append(gs)
                opts.grad_scale = dev.ptr(gs)
            if sq_sum is not None:
                sq = sq_sum.to(device=device)
                keep.append(sq)
                opts.grad_sq_sum = dev.ptr(sq)
                opts.found_inf = dev.ptr(self.scratch)
        with dev.context(self.key):
            stream = dev.stream(self.key)
            dev.before_launch()
            status = lib.cdll.fopt_step_ex(self.handle,
                                           ctypes.byref(opts) if opts is not None else None, stream)
            dev.after_launch()
        if status != 0:
            self.opt._fail(lib, "fopt_step_ex", status, self.where, self.params)
        for p, v in self.staged_now:
            real(p).copy_(v.sp)
        self.keepalive = keep  # until the next step: the launch reads them in stream order


class DeviceRun:
    """The GPU optimizer objects over the parameters of one device. sig: what they were built
    for ((group index, group, parameter ids, shared hyper-parameters) per member group)."""

    def __init__(self, sig, objects):
        self.sig, self.objects = sig, objects

    def close(self):
        for o in self.objects:
            o.close()
        self.objects = []


def _share_key(opt, gi, group):
    """Groups with equal keys can share a GPU object (with equal step counts)."""
    key = opt._config_key(group)
    if group["stochastic_rounding"]:
        key = (key, gi)   # random bits from the tensor's index in its group: an object of its own
    return key


class GpuPath:
    """The optimizer's GPU path (a mixin of FusedOptimizer): self._gpu_runs maps
    (id(device), device key) to the DeviceRun of that device."""

    def _gpu_step(self, dev, key, members, grad_scale, sq_sum):
        """One step of members ([(group index, group, params with a gradient)]) on one device."""
        rk = (id(dev), key)
        sig = [(gi, group, [id(p) for p in ps], self._config_key(group))
               for gi, group, ps in members]
        run = self._gpu_runs.get(rk)
        if run is not None and not _same_sig(run.sig, sig):
            self._spill(run)
            run = None
        if run is None:
            run = self._gpu_runs[rk] = self._hydrate(dev, key, members, sig)
        for o in run.objects:
            if not o.prepare():
                # a parameter changed shape, dtype or layout: rebuild over the new tensors
                # (no object has stepped yet)
                self._spill(run)
                run = self._gpu_runs[rk] = self._hydrate(dev, key, members, sig)
                for o2 in run.objects:
                    if not o2.prepare():
                        raise RuntimeError("fusedopt: cannot bind the parameters of %s after a "
                                           "rebuild" % o2.where)
                break
        for o in run.objects:
            o.launch(grad_scale, sq_sum)

    def _hydrate(self, dev, key, members, sig):
        """New objects over members, with the state that self.state holds for them."""
        parts = {}   # (share key, step) -> members of one object
        for gi, group, params in members:
            share = _share_key(self, gi, group)
            by_step = {}
            for p in params:
                st = self.state.get(p)
                s = st.get("step") if st else None
                by_step.setdefault(int(float(s)) if s is not None else 0, []).append(p)
            for s, ps in by_step.items():
                parts.setdefault((share, s), []).append((gi, group, ps))
        objects = []
        try:
            for (_, s), ms in parts.items():
                for c in range(0, len(ms), L.MAX_GROUPS):
                    objects.append(GpuObject(self, ms[c:c + L.MAX_GROUPS], dev, key, s))
        except BaseException:
            for o in objects:
                o.close()
            raise
        for _, _, params in members:  # the objects own the state now
            for p in params:
                self.state.pop(p, None)
        return DeviceRun(sig, objects)

    def _spill(self, run):
        """Copies the objects' state back into self.state and frees the objects."""
        for o in run.objects:
            self.state.update(o.snapshot())
        run.close()
        for k, v in list(self._gpu_runs.items()):
            if v is run:
                del self._gpu_runs[k]

    def _gpu_snapshots(self):
        out = {}
        for run in getattr(self, "_gpu_runs", {}).values():
            for o in run.objects:
                out.update(o.snapshot())
        return out


def _same_sig(a, b):
    return len(a) == len(b) and all(x[0] == y[0] and x[1] is y[1] and x[2] == y[2] and x[3] == y[3]
                                    for x, y in zip(a, b))
