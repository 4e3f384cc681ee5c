"""Checkpoints: state_dict() / load_state_dict() in torch.optim's format, deepcopy and pickling.

CPU parameters keep their state in opt.state as torch.optim does. For parameters on a GPU
optimizer object, the object owns the state: state_dict(), deepcopy and pickling copy it out
(fopt_state_copy), load_state_dict() drops the objects (their state into opt.state first) and the
next step builds new ones from what was loaded."""
import itertools
from collections import defaultdict

import torch

from ._layout import state_dtype_of, step_tensor

__all__ = ["Checkpoints"]

_MISSING = object()


class Checkpoints:
    """The checkpoint half of FusedOptimizer (a mixin)."""

    def __setstate__(self, state):
        self._drop_runtimes()
        super().__setstate__(state)
        self._init_runtime()
        for group in self.param_groups:
            for k, v in self.defaults.items():
                group.setdefault(k, v)
            group["state_dtype"] = state_dtype_of(group.get("state_dtype"))
        for st in self.state.values():
            if isinstance(st, dict) and "step" in st:
                st["step"] = step_tensor(st["step"])

    def __getstate__(self):
        state = defaultdict(dict)
        state.update(self.state)
        state.update(self._gpu_snapshots())
        return {"defaults": self.defaults, "state": state, "param_groups": self.param_groups}

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
        chain = itertools.chain.from_iterable
        id_map = dict(zip(chain(g["params"] for g in state_dict["param_groups"]),
                          chain(g["params"] for g in self.param_groups)))
        group_of = {id(p): g for g in self.param_groups for p in g["params"]}
        state_keys = dict(self._state_slots_all())
        for k, tensors in held.items():
            p = id_map.get(k)
            if p is None:
                continue
            group = group_of[id(p)]
            st = self.state[p]
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
