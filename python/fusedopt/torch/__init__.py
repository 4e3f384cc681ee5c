"""torch.optim drop-ins over libfusedopt: Adam, AdamW and RMSprop.

    import fusedopt.torch as fo
    opt = fo.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

CPU tensors are stepped by the fast CPU path (fopt_*_step_cpu_multi: SIMD, every core, one call
per parameter group); CUDA tensors by fusedopt's GPU optimizer objects (one per device for every
param group that shares its settings but lr and weight decay: one fused launch per step, on
torch's current stream). Parameter groups, schedulers, state_dict() in torch's own format,
GradScaler, deepcopy and pickling behave as with torch.optim. See python/README.md.

The modules: _layout (tensors as the library takes them), _devices (CUDA), _gpu (the GPU path),
_cpu (the CPU path), _checkpoint (state_dict, pickling), _base (FusedOptimizer), _adam, _rmsprop.
"""
from .._lib import FusedOptError
from ._adam import Adam, AdamW
from ._base import FusedOptimizer
from ._rmsprop import RMSprop

__all__ = ["Adam", "AdamW", "RMSprop", "FusedOptimizer", "FusedOptError"]

# pickles name the public module, whatever file the class lives in
for _cls in (Adam, AdamW, RMSprop, FusedOptimizer):
    _cls.__module__ = __name__
del _cls
