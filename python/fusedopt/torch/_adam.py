"""Adam and AdamW (torch.optim.Adam / AdamW drop-ins): their arguments, checks, state keys and
configuration; everything else is FusedOptimizer's (_base.py)."""
import torch

from ._base import PRECISION_DOC, FusedOptimizer

__all__ = ["Adam", "AdamW"]


class _AdamBase(FusedOptimizer):
    _c_create = "fopt_adam_create"
    _c_cpu_step = "fopt_adam_step_cpu_multi"
    _c_config_default = "fopt_adam_config_default"
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


class Adam(_AdamBase):
    __doc__ = """torch.optim.Adam on fusedopt's fused kernels (same arguments and defaults).

    Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
         maximize=False, master_weights=False, stochastic_rounding=False, ...)
    weight_decay is L2 added to the gradient, as in torch.optim.Adam; with
    decoupled_weight_decay=True (torch >= 2.6's keyword) it is AdamW's decoupled decay.
    """ + PRECISION_DOC
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
    """ + PRECISION_DOC
    _decoupled = True
    _sparse_msg = "AdamW does not support sparse gradients"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, master_weights=False, master_remainder=False,
                 stochastic_rounding=False, state_dtype=torch.float32, rounding_seed=0):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach, maximize,
                         capturable, differentiable, fused, master_weights, master_remainder,
                         stochastic_rounding, state_dtype, rounding_seed)
