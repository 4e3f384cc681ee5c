"""RMSprop (torch.optim.RMSprop drop-in): its arguments, checks, state keys and configuration;
everything else is FusedOptimizer's (_base.py)."""
import torch

from ._base import PRECISION_DOC, FusedOptimizer

__all__ = ["RMSprop"]


class RMSprop(FusedOptimizer):
    __doc__ = """torch.optim.RMSprop on fusedopt's fused kernels (same arguments and defaults).

    RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
            *, maximize=False, master_weights=False, stochastic_rounding=False, ...)
    alpha must be in [0, 1] (torch only checks >= 0). Centered RMSprop clamps a variance that
    rounding leaves slightly negative at 0 where torch produces NaN (docs/SEMANTICS.md).
    """ + PRECISION_DOC
    _c_create = "fopt_rmsprop_create"
    _c_cpu_step = "fopt_rmsprop_step_cpu_multi"
    _c_config_default = "fopt_rmsprop_config_default"
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
