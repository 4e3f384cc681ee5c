"""torch.optim drop-ins over libfusedopt: Adam, AdamW and RMSprop.

    import fusedopt.torch as fo
    opt = fo.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

CPU tensors are stepped by the fast CPU path (fopt_*_step_cpu_multi: SIMD, every core, one call
per parameter group); CUDA tensors by fusedopt's GPU optimizer object (one fused launch per group
and device, on torch's current stream). Parameter groups, schedulers, state_dict() in torch's own
format, GradScaler, deepcopy and pickling behave as with torch.optim. See python/README.md.
"""
from .._lib import FusedOptError
from ._optimizers import Adam, AdamW, RMSprop, FusedOptimizer

__all__ = ["Adam", "AdamW", "RMSprop", "FusedOptimizer", "FusedOptError"]
