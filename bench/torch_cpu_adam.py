#!/usr/bin/python3
"""PyTorch's CPU Adam on one fp32 tensor, for fopt_cpu_bench (issue 5).

Times torch.optim.Adam.step() with foreach=False (single-tensor loop) and foreach=True (the
_foreach_* kernels) on a tensor of --n elements with a random gradient, on --threads intra-op
threads, and prints the median step time of each on one machine-readable line:

  TORCH_CPU_ADAM torch=1.13.0 n=16777216 threads=2 reps=10 single_us=... foreach_us=... best_us=...

A mode that this PyTorch lacks (foreach needs >= 1.12) reports nan. Exit status 0 on success.
"""
import argparse
import math
import statistics
import sys
import time


def time_adam(torch, n, foreach, reps, warmup, lr):
    g = torch.Generator().manual_seed(1234)
    p = torch.nn.Parameter((torch.rand(n, generator=g) * 2 - 1).float())
    p.grad = ((torch.rand(n, generator=g) * 2 - 1) * 1e-2).float()
    kwargs = {"lr": lr}
    if foreach is not None:
        kwargs["foreach"] = foreach
    try:
        opt = torch.optim.Adam([p], **kwargs)
    except TypeError:
        return math.nan
    times = []
    with torch.no_grad():
        for i in range(warmup + reps):
            t0 = time.perf_counter()
            opt.step()
            t1 = time.perf_counter()
            if i >= warmup:
                times.append((t1 - t0) * 1e6)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16 * 1024 * 1024, help="elements (default 16M)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: PyTorch's default)")
    ap.add_argument("--reps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"TORCH_CPU_ADAM unavailable: {e}")
        return 2
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    single = time_adam(torch, a.n, False, a.reps, a.warmup, a.lr)
    foreach = time_adam(torch, a.n, True, a.reps, a.warmup, a.lr)
    finite = [t for t in (single, foreach) if not math.isnan(t)]
    best = min(finite) if finite else math.nan
    print(f"TORCH_CPU_ADAM torch={torch.__version__} n={a.n} threads={torch.get_num_threads()} "
          f"reps={a.reps} single_us={single:.1f} foreach_us={foreach:.1f} best_us={best:.1f}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
