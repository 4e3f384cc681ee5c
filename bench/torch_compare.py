#!/usr/bin/env python3
"""fusedopt against PyTorch's own fast optimizers, on the same GPU, tensors and timing method.

    python3 bench/torch_compare.py [path/to/libfusedopt.so] [--csv FILE] [--quick] ...

For each case (single tensors of 2^20 .. 2^28 elements, the GPT-2 small parameter shapes, 10,000
small tensors of random sizes 1..4096 - the same shapes as fopt_bench) and each optimizer it times:
  fused_ctypes   fusedopt's fopt_step, called through ctypes on torch's current stream
  torch_fused    torch.optim.Adam / AdamW (fused=True)
  torch_foreach  torch.optim.RMSprop (foreach=True)
Timing as in fopt_bench: warm-up, then one CUDA event pair around each step, each step preceded
by a read of 3x the L2 size (when the step's data is under 4x L2) or a sleep kernel long enough
for the host to enqueue the step while the device is busy, so the events hold device time; the
median over the repetitions. Both start from the same parameters and gradients; after 3 steps the
parameters are compared: max_rel_err = per tensor max|p_fusedopt - p_torch| / max|p_torch|, the
worst tensor (the same number on both rows of a case).

CSV columns: those of fopt_bench plus speedup_fused_vs_this = median_us(this row) /
median_us(fused_ctypes row of the same case): > 1 means fusedopt is faster.
"""
import argparse
import ctypes
import csv
import math
import os
import statistics
import sys
import time

VALIDATION_STEPS = 3

# ---- fusedopt through ctypes (mirrors include/fusedopt.h) ----------------------------------------


class Precision(ctypes.Structure):
    _fields_ = [("state_dtype", ctypes.c_int), ("master_weights", ctypes.c_bool),
                ("stochastic_rounding", ctypes.c_bool), ("master_remainder", ctypes.c_bool),
                ("seed", ctypes.c_uint64)]


class AdamConfig(ctypes.Structure):
    _fields_ = [("lr", ctypes.c_double), ("beta1", ctypes.c_double), ("beta2", ctypes.c_double),
                ("eps", ctypes.c_double), ("weight_decay", ctypes.c_double),
                ("decoupled_weight_decay", ctypes.c_bool), ("amsgrad", ctypes.c_bool),
                ("maximize", ctypes.c_bool),
                ("precision", Precision), ("capturable", ctypes.c_bool)]  # 0.2


class RmspropConfig(ctypes.Structure):
    _fields_ = [("lr", ctypes.c_double), ("alpha", ctypes.c_double), ("eps", ctypes.c_double),
                ("weight_decay", ctypes.c_double), ("momentum", ctypes.c_double),
                ("centered", ctypes.c_bool), ("maximize", ctypes.c_bool),
                ("precision", Precision), ("capturable", ctypes.c_bool)]  # 0.2


class Tensor(ctypes.Structure):
    _fields_ = [("param", ctypes.c_void_p), ("grad", ctypes.c_void_p), ("numel", ctypes.c_size_t),
                ("dtype", ctypes.c_int), ("group", ctypes.c_uint32)]  # group: 0.2


class Fusedopt:
    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)
        lib.fopt_version.restype = ctypes.c_char_p
        lib.fopt_last_error.restype = ctypes.c_char_p
        lib.fopt_status_string.restype = ctypes.c_char_p
        lib.fopt_status_string.argtypes = [ctypes.c_int]
        lib.fopt_adam_config_default.restype = AdamConfig
        lib.fopt_rmsprop_config_default.restype = RmspropConfig
        lib.fopt_adam_create.restype = ctypes.c_int
        lib.fopt_adam_create.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                                         ctypes.POINTER(AdamConfig), ctypes.POINTER(Tensor),
                                         ctypes.c_size_t]
        lib.fopt_rmsprop_create.restype = ctypes.c_int
        lib.fopt_rmsprop_create.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                                            ctypes.POINTER(RmspropConfig),
                                            ctypes.POINTER(Tensor), ctypes.c_size_t]
        lib.fopt_step.restype = ctypes.c_int
        lib.fopt_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.fopt_destroy.restype = None
        lib.fopt_destroy.argtypes = [ctypes.c_void_p]
        self.version = lib.fopt_version().decode()

    def check(self, status, what):
        if status != 0:
            raise RuntimeError("%s: %s (%s)" % (what, self.lib.fopt_status_string(status).decode(),
                                                self.lib.fopt_last_error().decode()))

    def create(self, spec, params, grads):
        arr = (Tensor * len(params))()
        for i, (p, g) in enumerate(zip(params, grads)):
            arr[i] = Tensor(p.data_ptr(), g.data_ptr(), p.numel(), 0)
        handle = ctypes.c_void_p()
        if spec["is_adam"]:
            cfg = self.lib.fopt_adam_config_default()
            for k, v in spec["fopt"].items():
                setattr(cfg, k, v)
            st = self.lib.fopt_adam_create(ctypes.byref(handle), ctypes.byref(cfg), arr, len(params))
        else:
            cfg = self.lib.fopt_rmsprop_config_default()
            for k, v in spec["fopt"].items():
                setattr(cfg, k, v)
            st = self.lib.fopt_rmsprop_create(ctypes.byref(handle), ctypes.byref(cfg), arr,
                                              len(params))
        self.check(st, "fopt_*_create")
        return handle

    def step(self, handle, stream_ptr):
        self.check(self.lib.fopt_step(handle, stream_ptr), "fopt_step")

    def destroy(self, handle):
        self.lib.fopt_destroy(handle)


# ---- optimizers and cases --------------------------------------------------------------------------

def optimizer_specs(torch, all_variants):
    specs = [
        dict(key="adam", optimizer="adam", variant="plain", is_adam=True, bytes=28, fopt={},
             impl="torch_fused", make=lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)),
        dict(key="adamw", optimizer="adamw", variant="plain", is_adam=True, bytes=28,
             fopt=dict(decoupled_weight_decay=True, weight_decay=1e-2), impl="torch_fused",
             make=lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, fused=True)),
        dict(key="rmsprop", optimizer="rmsprop", variant="plain", is_adam=False, bytes=20, fopt={},
             impl="torch_foreach",
             make=lambda ps: torch.optim.RMSprop(ps, lr=1e-2, foreach=True)),
    ]
    if all_variants:
        specs += [
            dict(key="amsgrad", optimizer="adam", variant="amsgrad", is_adam=True, bytes=36,
                 fopt=dict(amsgrad=True), impl="torch_fused",
                 make=lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True, fused=True)),
            dict(key="rmsprop_momentum", optimizer="rmsprop", variant="momentum", is_adam=False,
                 bytes=28, fopt=dict(momentum=0.9), impl="torch_foreach",
                 make=lambda ps: torch.optim.RMSprop(ps, lr=1e-2, momentum=0.9, foreach=True)),
            dict(key="rmsprop_centered", optimizer="rmsprop", variant="centered", is_adam=False,
                 bytes=28, fopt=dict(centered=True), impl="torch_foreach",
                 make=lambda ps: torch.optim.RMSprop(ps, lr=1e-2, centered=True, foreach=True)),
        ]
    return specs


def gpt2_small_shapes():
    d, vocab, ctx, layers = 768, 50257, 1024, 12
    sizes = [vocab * d, ctx * d]
    for _ in range(layers):
        sizes += [d, d, d * 3 * d, 3 * d, d * d, d, d, d, d * 4 * d, 4 * d, 4 * d * d, d]
    return sizes + [d, d]


def small_10k_shapes():
    """The same 10,000 sizes as fopt_bench (splitmix64, seed 12345, 1 + r % 4096)."""
    mask = (1 << 64) - 1
    s, out = 12345, []
    for _ in range(10000):
        s = (s + 0x9E3779B97F4A7C15) & mask
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        out.append(1 + z % 4096)
    return out


# ---- timing ----------------------------------------------------------------------------------------

class Timer:
    def __init__(self, torch, budget, max_reps):
        self.torch = torch
        self.budget = budget
        self.max_reps = max_reps
        props = torch.cuda.get_device_properties(0)
        self.l2 = getattr(props, "L2_cache_size", 50 << 20) or (50 << 20)
        self.flush_buf = torch.empty(max(3 * self.l2, 32 << 20) // 4, dtype=torch.float32,
                                     device="cuda").fill_(0.0117)

    def pre(self, flush, sleep_us):
        if flush:
            self.flush_buf.sum()
        else:
            self.torch.cuda._sleep(int(sleep_us * 2000))  # ~2 cycles per ns on Hopper clocks

    def time(self, step, flush):
        torch = self.torch
        stream = torch.cuda.current_stream()
        # warm-up; host time per step decides how long the sleep before each timed step must be
        t0 = time.perf_counter()
        for _ in range(3):
            step()
        host_est = (time.perf_counter() - t0) / 3
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(stream)
        for _ in range(3):
            step()
        e.record(stream)
        torch.cuda.synchronize()
        est = s.elapsed_time(e) * 1e-3 / 3
        sleep_us = max(20.0, 2e6 * host_est)
        reps = int(self.budget / (est + sleep_us * 1e-6 + host_est))
        reps = max(5, min(self.max_reps, reps))
        evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
               for _ in range(reps)]
        host = []
        for a, b in evs:
            self.pre(flush, sleep_us)
            a.record(stream)
            t0 = time.perf_counter()
            step()
            host.append(time.perf_counter() - t0)
            b.record(stream)
        torch.cuda.synchronize()
        dev = [a.elapsed_time(b) * 1e3 for a, b in evs]
        return statistics.median(dev), 1e6 * statistics.median(host)


def copy_bandwidth(torch):
    n = (1 << 30) // 4
    src = torch.full((n,), 0.5, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(15):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e-3)
    del src, dst
    return 2.0 * (1 << 30) / statistics.median(times) * 1e-9


# ---- main ------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("lib", nargs="?", default=None,
                    help="path to libfusedopt.so (default: build/libfusedopt.so)")
    ap.add_argument("--csv", help="write the results as CSV")
    ap.add_argument("--min-log2", type=int, default=20)
    ap.add_argument("--max-log2", type=int, default=28)
    ap.add_argument("--log2-step", type=int, default=2)
    ap.add_argument("--reps", type=int, default=100, help="most timed repetitions per case")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--no-lists", action="store_true", help="skip the GPT-2 and 10k lists")
    ap.add_argument("--all-variants", action="store_true",
                    help="also AMSGrad, RMSprop with momentum, centered RMSprop")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="start no new case after this many seconds")
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        print("torch_compare: PyTorch is not installed here; nothing to compare (skipped)")
        return 0
    if not torch.cuda.is_available():
        print("torch_compare: no CUDA device visible to PyTorch; comparison SKIPPED")
        return 0

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lib_path = args.lib or os.path.join(root, "build", "libfusedopt.so")
    fo = Fusedopt(lib_path)
    budget = 0.15 if args.quick else 0.4
    max_reps = min(args.reps, 20) if args.quick else args.reps
    step_log2 = max(args.log2_step, 4) if args.quick else args.log2_step
    timer = Timer(torch, budget, max_reps)
    device = torch.cuda.get_device_name(0).replace(",", " ")
    copy_gbs = copy_bandwidth(torch)
    print("torch_compare: fusedopt %s (%s), PyTorch %s, %s, copy bandwidth %.1f GB/s "
          "(read + write)" % (fo.version, lib_path, torch.__version__, device, copy_gbs))

    cases = []
    if not args.no_lists:
        cases += [("gpt2_small", gpt2_small_shapes()), ("small_10k", small_10k_shapes())]
    cases += [("2^%d" % k, [1 << k]) for k in range(args.min_log2, args.max_log2 + 1, step_log2)]
    specs = optimizer_specs(torch, args.all_variants)

    out = None
    if args.csv:
        out = open(args.csv, "w", newline="")
        w = csv.writer(out)
        w.writerow(["optimizer", "variant", "impl", "dtype", "tensors", "elements", "median_us",
                    "bytes_per_elem", "gb_per_s", "pct_of_copy_bw", "max_rel_err", "device",
                    "speedup_fused_vs_this"])
    hdr = "%-8s %-9s %-14s %-10s %7s %11s %11s %8s %6s %11s %8s %9s" % (
        "optimizer", "variant", "impl", "case", "tensors", "elements", "median_us", "GB/s",
        "%copy", "max_rel_err", "host_us", "x_fused")
    print(hdr)
    t_start = time.perf_counter()
    gen = torch.Generator(device="cuda")
    slower = []
    compared = 0
    for name, sizes in cases:
        if args.time_budget and time.perf_counter() - t_start > args.time_budget:
            print("# time budget of %.0f s reached: the remaining cases were not run"
                  % args.time_budget)
            break
        total = sum(sizes)
        gen.manual_seed(1234 + total)
        # one flat allocation per buffer, each tensor 16-byte aligned inside it (as fopt_bench)
        offs, off = [], 0
        for n in sizes:
            offs.append(off)
            off += (n + 3) & ~3
        flat_p0 = torch.rand(off, device="cuda", generator=gen) * 2 - 1
        flat_g = torch.rand(off, device="cuda", generator=gen) * 2 - 1
        for spec in specs:
            print("[%s %s]" % (spec["key"], name), end="\r", file=sys.stderr, flush=True)
            flush = total * spec["bytes"] < 4 * timer.l2
            # fusedopt on its own copy of the parameters; torch on another; same gradients
            f_flat = flat_p0.clone()
            t_flat = flat_p0.clone()
            fp = [f_flat[o:o + n] for o, n in zip(offs, sizes)]
            grads = [flat_g[o:o + n] for o, n in zip(offs, sizes)]
            tp = [torch.nn.Parameter(t_flat[o:o + n]) for o, n in zip(offs, sizes)]
            for p, g in zip(tp, grads):
                p.grad = g
            handle = fo.create(spec, fp, grads)
            topt = spec["make"](tp)
            stream_ptr = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

            def fstep():
                fo.step(handle, stream_ptr)

            @torch.no_grad()
            def tstep():
                topt.step()

            for _ in range(VALIDATION_STEPS):
                fstep()
                tstep()
            torch.cuda.synchronize()
            with torch.no_grad():
                errs = torch.stack([(a - b.detach()).abs().max() / b.detach().abs().max()
                                    for a, b in zip(fp, tp)])
                err = float(errs.max().item())  # NaN propagates through max
            f_us, f_host = timer.time(fstep, flush)
            t_us, t_host = timer.time(tstep, flush)
            fo.destroy(handle)
            del topt, tp, fp, grads, f_flat, t_flat
            for impl, us, host in (("fused_ctypes", f_us, f_host), (spec["impl"], t_us, t_host)):
                gbs = total * spec["bytes"] / (us * 1e-6) * 1e-9
                pct = 100.0 * gbs / copy_gbs
                ratio = us / f_us
                print("%-8s %-9s %-14s %-10s %7d %11d %11.2f %8.1f %6.1f %11.2e %8.1f %9.2f" % (
                    spec["optimizer"], spec["variant"], impl, name, len(sizes), total, us, gbs,
                    pct, err, host, ratio), flush=True)
                if out:
                    w.writerow([spec["optimizer"], spec["variant"], impl, "fp32", len(sizes),
                                total, "%.3f" % us, spec["bytes"], "%.3f" % gbs, "%.2f" % pct,
                                "%.3e" % err, device, "%.3f" % ratio])
                    out.flush()
            compared += 1
            if t_us <= f_us:
                slower.append("%s %s (fusedopt %.1f us, torch %.1f us)"
                              % (spec["key"], name, f_us, t_us))
            if not (err < 1e-4):
                print("# WARNING: %s %s: fusedopt and torch differ by %.2e after %d steps"
                      % (spec["key"], name, err, VALIDATION_STEPS))
        del flat_p0, flat_g
        torch.cuda.empty_cache()
        print()
    print("== torch_compare summary (%.0f s) ==" % (time.perf_counter() - t_start))
    if slower:
        print("fusedopt NOT faster than PyTorch on %d of %d cases:" % (len(slower), compared))
        for s in slower:
            print("  " + s)
    else:
        print("fusedopt faster than PyTorch on all %d cases" % compared)
    if out:
        out.close()
        print("CSV: " + args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
