"""The CPU path: CPU parameters stepped by the fast CPU path (fopt_*_step_cpu_multi: SIMD, every
core), one call per param group (the CPU entry points take one configuration), over pointers to
the torch tensors that state[p] holds as torch.optim keeps them."""
import ctypes

import torch

from .. import _lib as L
from ._layout import alloc, conform, is_step_tensor, real, step_tensor

__all__ = ["CpuRun", "CpuPath"]


class CpuRun:
    """The cached fopt_host_tensor array of one param group's CPU parameters; sig[i] says what
    entry i points at, so an unchanged parameter costs a few comparisons per step."""

    def __init__(self, group, params):
        self.group = group
        self.ids = [id(p) for p in params]
        self.arr = (L.HostTensor * len(params))()
        self.sig = [None] * len(params)


class CpuPath:
    """The optimizer's CPU path (a mixin of FusedOptimizer): self._cpu_runs maps a param group's
    index to its CpuRun."""

    def _ensure_state(self, p, st, group, staged):
        """Creates or converts state[p]'s tensors into what the C call needs; returns the state
        key of the master copy (or None)."""
        if "step" not in st:
            st["step"] = torch.tensor(0.0)
        elif not is_step_tensor(st["step"]):
            st["step"] = step_tensor(st["step"])
        tdt = torch.complex64 if p.is_complex() else group["state_dtype"]
        for key, _ in self._state_slots(group):
            t = st.get(key)
            st[key] = alloc(p, tdt, staged).zero_() if t is None else conform(t, p, tdt, staged, key)
        mk = self._master_key(group, p.dtype)
        if mk:
            dt = torch.float32 if mk == "master" else torch.int16
            t = st.get(mk)
            if t is not None:
                st[mk] = conform(t, p, dt, staged, mk)
            elif mk == "master":
                st[mk] = alloc(p, dt, staged).copy_(p)   # a master copy starts from the parameter
            else:
                st[mk] = alloc(p, dt, staged).zero_()
        return mk

    def _cpu_entry(self, gi, group, run, i, p, slots, keep, post):
        """Fills run.arr[i] for p (after the checks); its signature when it points at p's own
        tensors, None when at temporaries."""
        g = p.grad
        st = self.state[p]
        rp, code, staged = self._check_param(gi, group, p, g)
        mk = self._ensure_state(p, st, group, staged)
        e = run.arr[i]
        rg = real(g)
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
        if not direct:
            return None
        tracked = ["step"] + [k for k, _ in slots] + ([mk] if mk else [])
        return (p.data_ptr(), g.data_ptr(), g.dtype, st, tuple((k, st[k]) for k in tracked))

    def _cpu_step(self, gi, group, params, grad_scale):
        lib = L.library()
        run = self._cpu_runs.get(gi)
        if run is None or run.group is not group or run.ids != [id(p) for p in params]:
            run = self._cpu_runs[gi] = CpuRun(group, params)
        slots = self._state_slots(group)
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
            run.sig[i] = None   # (stays None if the checks raise)
            run.sig[i] = self._cpu_entry(gi, group, run, i, p, slots, keep, post)
            steps.append(st["step"])

        cfg = self._config(lib, group)
        opts = None
        if grad_scale is not None:
            gs = grad_scale.detach().to(device="cpu", dtype=torch.float32).reshape(-1)[:1].contiguous()
            keep.append(gs)
            opts = L.StepOptions()
            opts.grad_scale = gs.data_ptr()
        name = self._c_cpu_step
        fn = getattr(lib.cdll, name)
        optp = ctypes.byref(opts) if opts is not None else None
        for v, a, ps in _by_step_count(run.arr, params, steps):
            status = fn(ctypes.byref(cfg), int(v) + 1, a, len(ps), optp)
            if status != 0:
                self._fail(lib, name, status, self._where(gi, "CPU"), ps)
        for rp, pc in post:
            rp.copy_(pc)
        torch._foreach_add_(steps, 1)


def _by_step_count(arr, params, steps):
    """[(step count, fopt_host_tensor array, params)]: one call per step count (parameters at
    different counts are rare: those that had no gradient at some steps)."""
    values = torch.stack(steps).tolist() if len(steps) > 1 else [float(steps[0])]
    first = values[0]
    if all(v == first for v in values):
        return [(first, arr, params)]
    by = {}
    for i, v in enumerate(values):
        by.setdefault(v, []).append(i)
    return [(v, (L.HostTensor * len(idx))(*[arr[i] for i in idx]), [params[i] for i in idx])
            for v, idx in by.items()]
