"""Tensor layout and dtypes: how a torch tensor is handed to libfusedopt.

fusedopt steps raw blocks of memory. A parameter whose elements fill one block without gaps (any
dimension order, `is_dense`) is stepped in place, its state taking the same strides; any other
parameter is "staged": stepped as a contiguous copy that is copied back. Complex parameters are
stepped as their float32 real view."""
import torch

from .. import _lib as L

__all__ = ["DTYPE_CODE", "state_dtype_of", "is_dense", "real", "alloc", "conform", "is_step_tensor",
           "step_tensor"]

# parameter dtype -> fopt_dtype
DTYPE_CODE = {torch.float32: L.FLOAT32, torch.float16: L.FLOAT16, torch.bfloat16: L.BFLOAT16}

_STATE_DTYPE_NAMES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
                      "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                      "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}


def state_dtype_of(value):
    """torch.float32 / torch.bfloat16 from a dtype or its name (a group's state_dtype)."""
    if value is None:
        return torch.float32
    if isinstance(value, str):
        key = value.lower().replace("torch.", "")
        if key not in _STATE_DTYPE_NAMES:
            raise ValueError("Invalid state_dtype: %r (torch.float32 or torch.bfloat16)" % value)
        value = _STATE_DTYPE_NAMES[key]
    if value in (torch.float32, torch.bfloat16):
        return value
    raise ValueError("Invalid state_dtype: %s (fusedopt keeps optimizer state in torch.float32 or "
                     "torch.bfloat16)" % value)


def is_dense(t):
    """True when t's elements fill one block of memory without gaps or overlap (any dim order):
    an elementwise update over that raw block is an update of t."""
    if t.is_contiguous():
        return True
    dims = sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1)
    expect = 1
    for st, sz in dims:
        if st != expect:
            return False
        expect *= sz
    return True


def real(t):
    """The tensor fusedopt steps: a complex tensor's real view (as torch's Adam and RMSprop do)."""
    if t.is_complex():
        if t.is_conj():
            t = t.resolve_conj()
        return torch.view_as_real(t)
    return t


def alloc(p, dtype, staged, shape=None, stride=None):
    """A tensor for p's state: p's own layout (strides) when p is dense, else contiguous. shape and
    stride, when given, replace p's (the layout an object was built on)."""
    shape = tuple(p.shape) if shape is None else shape
    if staged:
        return torch.empty(shape, dtype=dtype, device=p.device)
    return torch.empty_strided(shape, p.stride() if stride is None else stride, dtype=dtype,
                               device=p.device)


def _layout_ok(t, p, staged):
    return t.is_contiguous() if staged else t.stride() == p.stride()


def conform(t, p, dtype, staged, what):
    """t converted to dtype, p's device and the layout fusedopt needs (a copy only if needed)."""
    if tuple(t.shape) != tuple(p.shape):
        raise ValueError("state %r has shape %s but its parameter has shape %s"
                         % (what, tuple(t.shape), tuple(p.shape)))
    if t.dtype == dtype and t.device == p.device and _layout_ok(t, p, staged):
        return t
    out = alloc(p, dtype, staged)
    out.copy_(t)
    return out


def is_step_tensor(value):
    return (torch.is_tensor(value) and value.device.type == "cpu"
            and value.dtype == torch.float32 and value.dim() == 0)


def step_tensor(value):
    """state['step'] as torch.optim (1.13 / 2.x, not capturable) keeps it: a CPU float32 scalar
    tensor. Accepts plain numbers (older torch, RMSprop in 1.13) and device tensors."""
    if torch.is_tensor(value):
        if is_step_tensor(value):
            return value
        return torch.tensor(float(value.detach().reshape(-1)[0].item()))
    return torch.tensor(float(value))
