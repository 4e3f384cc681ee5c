"""The device interface of the GPU path: how it reaches a device's tensors.

The GPU path (_gpu.py) talks to its device only through an object like CudaDevice, so a test can
drive it on libfusedopt's emulated device (python/tests/emu_device.py)."""
import torch

__all__ = ["CudaDevice"]


class CudaDevice:
    """CUDA tensors: raw data pointers, torch's current stream."""

    raw = True  # ptr(t) is t.data_ptr(): the step loop calls that directly

    def __init__(self, lib):
        self.lib = lib

    def claims(self, t):
        return t.is_cuda

    def key(self, t):
        return t.get_device()

    def context(self, key):
        return torch.cuda.device(key)

    def stream(self, key):
        return torch.cuda.current_stream(key).cuda_stream

    def ptr(self, t):
        return t.data_ptr()

    # A device that must move data around a launch (the emulated one of the tests) records the
    # tensors ptr() hands out between begin() and collect(); resume(token) brings an object's
    # record back before its launch. Nothing to do on CUDA.
    def begin(self):
        pass

    def collect(self):
        return None

    def resume(self, token):
        pass

    def before_launch(self):
        pass

    def after_launch(self):
        pass

    def synchronize(self, key):
        # fopt_state_copy and fopt_set_step_count use cudaMemcpy (legacy default stream);
        # order them with every stream before torch or a step on another stream goes on.
        torch.cuda.synchronize(key)
