"""fusedopt under torch.distributed: DistributedDataParallel training with a fusedopt.torch
optimizer, plain or sharded with torch's ZeroRedundancyOptimizer, on the gloo backend (CPU
processes; the same code runs on NCCL with CUDA tensors).

    python3 examples/ddp_zero.py --world 3 --steps 20          # fusedopt AdamW, DDP and DDP+ZeRO
    python3 examples/ddp_zero.py --world 2 --optimizer torch   # the same with torch.optim.AdamW

Each run trains the same small MLP on the same global batches (each rank takes its slice), then
rank 0 prints the loss and, with --compare, whether the ZeRO-sharded run ended with the same
parameter bits as the unsharded one. run() is what python/tests/test_distributed.py calls.
"""
import argparse
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))  # the checkout's package


def optimizer_class(name):
    if name == "torch":
        return torch.optim.AdamW
    import fusedopt.torch as fo
    return fo.AdamW


def model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, 10))


def global_batches(steps, batch=48, seed=1):
    """A learnable problem: the label is the position of the largest of the first 10 inputs."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(batch, 32, generator=g) for _ in range(steps)]
    return [(x, x[:, :10].argmax(1)) for x in xs]


def train(rank, world, opt_name, zero, steps):
    """One training run in an initialised process group; returns (final params, mean losses)."""
    net = DDP(model())
    decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in net.named_parameters() if n.endswith("bias")]
    cls = optimizer_class(opt_name)
    kw = dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.05)
    if zero:
        opt = ZeroRedundancyOptimizer(decay, optimizer_class=cls, **kw)
        opt.add_param_group({"params": no_decay, "weight_decay": 0.0})
    else:
        opt = cls([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], **kw)
    losses = []
    for x, y in global_batches(steps):
        share = x.shape[0] // world
        xb, yb = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        t = loss.detach().clone()
        dist.all_reduce(t)
        losses.append(float(t) / world)
    return [p.detach().clone() for p in net.module.parameters()], losses


def worker(rank, world, init_file, runs, steps, out_file):
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world)
    torch.set_num_threads(1)
    results = [train(rank, world, opt_name, zero, steps) for opt_name, zero in runs]
    if rank == 0:
        torch.save(results, out_file)
    dist.barrier()
    dist.destroy_process_group()


def run(world, runs, steps=10):
    """Trains each (optimizer name, zero) of `runs` in turn in `world` gloo processes; returns
    rank 0's (final params, mean loss per step) for each."""
    with tempfile.TemporaryDirectory() as d:
        init_file, out_file = os.path.join(d, "init"), os.path.join(d, "out.pt")
        mp.start_processes(worker, args=(world, init_file, runs, steps, out_file),
                           nprocs=world, join=True, start_method="spawn")
        return torch.load(out_file)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--optimizer", choices=["fusedopt", "torch"], default="fusedopt")
    a = ap.parse_args()
    (plain, lp), (sharded, lz) = run(a.world, [(a.optimizer, False), (a.optimizer, True)], a.steps)
    same = all(torch.equal(p, q) for p, q in zip(plain, sharded))
    print("ddp_zero: %s AdamW, %d gloo processes, %d steps: loss %.4f -> %.4f (DDP), %.4f (DDP+ZeRO)"
          % (a.optimizer, a.world, a.steps, lp[0], lp[-1], lz[-1]))
    print("ddp_zero: ZeRO-sharded parameters %s the unsharded run's" %
          ("are bit-identical to" if same else "DIFFER from"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
