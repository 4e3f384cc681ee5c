"""fusedopt.torch under torch.distributed (gloo, CPU processes): DistributedDataParallel with
fusedopt's AdamW, and torch's ZeroRedundancyOptimizer with optimizer_class=fusedopt.torch.AdamW.
The sharded run must give the same bits as the unsharded one (each rank steps its own parameters
with the same element math), and both must match torch.optim.AdamW's runs within the golden
tolerance."""
import os
import sys

import pytest
import torch

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "examples"))
import ddp_zero  # noqa: E402

from helpers import rel_err  # noqa: E402

STEPS = 10


@pytest.mark.parametrize("world", [2, 3])
def test_zero_sharded_fusedopt_is_bit_identical_to_ddp_and_matches_torch(world):
    runs = [("fusedopt", False), ("fusedopt", True), ("torch", False), ("torch", True)]
    (plain, lp), (sharded, lz), (ref, lt), (ref_z, _) = ddp_zero.run(world, runs, steps=STEPS)
    for i, (p, q) in enumerate(zip(plain, sharded)):
        assert torch.equal(p, q), "parameter %d differs between DDP and DDP+ZeRO" % i
    assert lp == lz
    assert rel_err(plain, ref) < 1e-5
    assert rel_err(sharded, ref_z) < 1e-5
    assert lp[-1] < 0.9 * lp[0], "the loss should fall: %s" % lp
