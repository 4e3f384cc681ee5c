"""The module path of the optimizers in fusedopt 0.2, which pickles of them name; the code is
in _base.py, _adam.py and _rmsprop.py."""
from ._adam import Adam, AdamW  # noqa: F401
from ._base import FusedOptimizer  # noqa: F401
from ._rmsprop import RMSprop  # noqa: F401
