"""FusedOptimizer: the torch.optim.Optimizer that Adam, AdamW and RMSprop share.

It checks the arguments, sorts each step's parameters into the CPU path (_cpu.py) and the GPU
path (_gpu.py, per device), and holds what both need from a param group: the configuration
struct, the state slots, the master-copy key. An optimizer module (_adam.py, _rmsprop.py) says
what is its own through the class attributes and methods at the end of the class."""
import re

import torch
from torch.optim import Optimizer

from .. import _lib as L
from .._lib import FusedOptError
from ._checkpoint import Checkpoints
from ._cpu import CpuPath
from ._devices import CudaDevice
from ._gpu import GpuPath
from ._layout import DTYPE_CODE, is_dense, real, state_dtype_of

__all__ = ["FusedOptimizer", "PRECISION_DOC"]

PRECISION_DOC = """
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


class FusedOptimizer(Checkpoints, CpuPath, GpuPath, Optimizer):
    """Base of Adam, AdamW and RMSprop. Not for direct use."""

    # torch.amp / torch.cuda.amp GradScaler: call step() directly and hand over grad_scale and
    # found_inf (torch 2.x sets them as attributes of the optimizer; keywords work too).
    _step_supports_amp_scaling = True

    def __init__(self, params, defaults, **fopt_options):
        """defaults: the torch optimizer's; fopt_options: the fusedopt options of PRECISION_DOC.
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
        """Where a failure happened: gi is a param group's index or a list of them."""
        if isinstance(gi, int):
            which = "param group %d" % gi
        else:
            which = "param group%s %s" % ("s" if len(gi) > 1 else "", ", ".join(map(str, gi)))
        return "fusedopt.torch.%s.step (%s, %s)" % (type(self).__name__, which, device)

    def _fail(self, lib, name, status, where, params):
        detail = lib.last_error()
        sname = lib.cdll.fopt_status_string(status).decode()
        m = re.search(r"tensor (\d+)", detail)
        extra = ""
        if m and params is not None and int(m.group(1)) < len(params):
            p = params[int(m.group(1))]
            extra = " [tensor %s is a parameter of shape %s, dtype %s]" % (
                m.group(1), tuple(p.shape), p.dtype)
        # detail starts with the status name (fopt_last_error)
        raise FusedOptError("%s: %s failed: %s%s" % (where, name, detail, extra),
                            status=status, status_name=sname, detail=detail, call=name)

    # -- validation --
    @staticmethod
    def _check_precision(d):
        d["state_dtype"] = state_dtype_of(d.get("state_dtype"))
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

    # -- torch.optim API --
    def zero_grad(self, set_to_none: bool = True):
        """As torch.optim.Optimizer.zero_grad; set_to_none defaults to True (torch 2.x). New
        gradient tensors are rebound to the GPU optimizer object at the next step."""
        super().zero_grad(set_to_none=set_to_none)

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

        cpu, gpu = self._sort_params()
        if cpu and not (found_inf is not None and bool(found_inf.detach().ne(0).any().item())):
            for gi, group, params in cpu:
                self._cpu_step(gi, group, params, grad_scale)
        sq_sum = None
        if found_inf is not None and gpu:
            # torch's found_inf is an input (skip the step); fusedopt's is an output. A non-finite
            # grad_sq_sum makes fusedopt skip the step exactly as when it finds an inf itself,
            # without a pass over the gradients and without a host synchronisation.
            fi = found_inf.detach().reshape(-1)
            sq_sum = torch.zeros(1, dtype=torch.float64, device=fi.device)
            sq_sum.masked_fill_(fi.ne(0).any().reshape(1), float("inf"))
        for dev, key, members in gpu.values():
            self._gpu_step(dev, key, members, grad_scale, sq_sum)
        return loss

    def _sort_params(self):
        """The parameters with a gradient: CPU [(group index, group, params)], and per device
        {(id(device), key): (device, key, [(group index, group, params)])}."""
        cpu, gpu = [], {}
        fdev = self._fopt_device
        for gi, group in enumerate(self.param_groups):
            on_cpu, on_dev = [], {}
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
                    on_cpu.append(p)
                    continue
                else:
                    raise TypeError("fusedopt.torch.%s: a parameter is on device %s; fusedopt "
                                    "steps CPU and CUDA tensors" % (type(self).__name__, p.device))
                k = dev.key(p)
                on_dev.setdefault((id(dev), k), (dev, k, []))[2].append(p)
            if on_cpu:
                cpu.append((gi, group, on_cpu))
            for dk, (dev, k, ps) in on_dev.items():
                gpu.setdefault(dk, (dev, k, []))[2].append((gi, group, ps))
        return cpu, gpu

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

    # -- what a param group asks of the library --
    def _state_slots(self, group):
        return [(key, i) for i, key in enumerate(self._slot_names) if self._slot_used(group, i)]

    @classmethod
    def _state_slots_all(cls):
        return [(key, i) for i, key in enumerate(cls._slot_names)]

    def _config(self, lib, group, capturable=False):
        cfg = getattr(lib.cdll, self._c_config_default)()
        cfg.lr = float(group["lr"])
        cfg.eps = float(group["eps"])
        cfg.weight_decay = float(group["weight_decay"])
        cfg.maximize = bool(group["maximize"])
        self._fill_config(cfg, group)
        pr = cfg.precision
        pr.state_dtype = L.BFLOAT16 if group["state_dtype"] == torch.bfloat16 else L.FLOAT32
        pr.master_weights = bool(group["master_weights"])
        pr.stochastic_rounding = bool(group["stochastic_rounding"])
        pr.master_remainder = bool(group["master_remainder"])
        pr.seed = int(group["rounding_seed"])
        cfg.capturable = capturable
        return cfg

    def _config_key(self, group):
        """The group's hyper-parameters that a GPU optimizer object keeps for all its groups
        (every one but lr and weight decay)."""
        return self._own_key(group) + (
            bool(group["maximize"]), bool(group.get("capturable", False)), group["state_dtype"],
            bool(group["master_weights"]), bool(group["master_remainder"]),
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
            code = DTYPE_CODE.get(dt)
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
        return real(p), code, not is_dense(p)

    # -- what each optimizer module defines --
    _c_create = None          # "fopt_adam_create": the GPU object's constructor
    _c_cpu_step = None        # "fopt_adam_step_cpu_multi": the CPU path's call
    _c_config_default = None  # "fopt_adam_config_default": the configuration's defaults
    _slot_names = ()          # the state keys of the library's state slots 0, 1, 2 (fopt_slot)
    _sparse_msg = None        # torch's error for a sparse gradient

    def _validate(self, d):
        """torch's argument checks, with torch's texts."""
        raise NotImplementedError

    def _slot_used(self, group, slot):
        raise NotImplementedError

    def _fill_config(self, cfg, group):
        """The hyper-parameters of this optimizer only (see _config)."""
        raise NotImplementedError

    def _own_key(self, group):
        """The hyper-parameters of this optimizer only that a GPU object keeps for all its
        groups (see _config_key)."""
        raise NotImplementedError
