"""The module path of the optimizers in fusedopt 0.2, which pickles of them name; the code is
in _base.py, _adam.py and _rmsprop.py."""
from ._adam import Adam, AdamW
from ._base import FusedOptimizer
from ._rmsprop import RMSprop

__all__ = ["Adam", "AdamW", "RMSprop", "FusedOptimizer"]
