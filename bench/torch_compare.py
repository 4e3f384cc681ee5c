#!/usr/bin/env python3
"""fusedopt against PyTorch's own fast optimizers, on the same GPU, tensors and timing method.

    python3 bench/torch_compare.py [path/to/libfusedopt.so] [--csv FILE] [--quick] ...

fusedopt is driven through its Python package (python/fusedopt, ctypes over libfusedopt): the
optimizer objects fusedopt.torch.Adam / AdamW / RMSprop that training code uses, not raw C
calls. The library is the one given (FUSEDOPT_LIB), else the package's own search.

GPU part (skipped without a CUDA device). For each case (single tensors of 2^20 .. 2^28
elements, the GPT-2 small parameter shapes, 10,000 small tensors of random sizes 1..4096 - the
same shapes as fopt_bench) and each optimizer it times:
  fused_ctypes   fusedopt.torch.<Optimizer>.step() on CUDA tensors (the GPU optimizer object,
                 one fused launch on torch's current stream; the name is kept for scripts)
  torch_fused    torch.optim.Adam / AdamW (fused=True)
  torch_foreach  torch.optim.RMSprop (foreach=True)
and, with bf16 parameters (dtype bf16; --no-bf16 leaves them out):
  adam bf16_master  fusedopt with an fp32 master copy (master_weights=True, fp32 states)
  adam bf16_states  fusedopt with bf16 states, no master
  each against torch.optim.Adam(fused=True) on the same bf16 parameters (bf16 states).
Timing as in fopt_bench: warm-up, then one CUDA event pair around each step, each step preceded
by a read of 3x the L2 size (when the step's data is under 4x L2) and a sleep kernel long enough
for the host to enqueue the step while the device is busy, so the events hold device time (the
package's step() spends some host time in Python: host_us); the median over the repetitions.
Both start from the same parameters and gradients; after 3 steps the parameters are compared:
max_rel_err = per tensor max|p_fusedopt - p_torch| / max|p_torch|, the worst tensor (the same
number on both rows of a case).

CPU offload part (--no-cpu leaves it out): fusedopt.torch.Adam.step() on CPU tensors (the fast
CPU path: SIMD, every core) against torch.optim.Adam with foreach=True and foreach=False, on the
148 tensors of GPT-2 small (124.4M parameters; --cpu-scale shrinks every tensor), both on the
same number of threads (fusedopt's default, every core; --cpu-threads, --cpu-torch-threads);
wall-clock median step time (variant cpu_offload, impls cpu_fusedopt, cpu_torch_foreach,
cpu_torch_single; max_rel_err against the single-tensor result). On a loaded machine run it with
OMP_WAIT_POLICY=passive: spinning OpenMP threads of an oversubscribed machine slow PyTorch's
many small parallel regions far more than fusedopt's one.

CSV columns: those of fopt_bench plus speedup_fused_vs_this = median_us(this row) /
median_us(fusedopt row of the same case): > 1 means fusedopt is faster.
"""
import argparse
import csv
import os
import statistics
import sys
import time

VALIDATION_STEPS = 3

# ---- optimizers and cases --------------------------------------------------------------------------

def optimizer_specs(torch, fo, all_variants, bf16):
    """Each spec: fusedopt's optimizer (fo), torch's (make), the bytes a step must move per
    element for each (fusedopt's, torch's), the parameter dtype."""
    f32, b16 = torch.float32, torch.bfloat16
    specs = [
        dict(key="adam", optimizer="adam", variant="plain", bytes=28, dtype=f32,
             fo=lambda ps: fo.Adam(ps, lr=1e-3),
             impl="torch_fused", make=lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)),
        dict(key="adamw", optimizer="adamw", variant="plain", bytes=28, dtype=f32,
             fo=lambda ps: fo.AdamW(ps, lr=1e-3, weight_decay=1e-2), impl="torch_fused",
             make=lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, fused=True)),
        dict(key="rmsprop", optimizer="rmsprop", variant="plain", bytes=20, dtype=f32,
             fo=lambda ps: fo.RMSprop(ps, lr=1e-2), impl="torch_foreach",
             make=lambda ps: torch.optim.RMSprop(ps, lr=1e-2, foreach=True)),
    ]
    if all_variants:
        specs += [
            dict(key="amsgrad", optimizer="adam", variant="amsgrad", bytes=36, dtype=f32,
                 fo=lambda ps: fo.Adam(ps, lr=1e-3, amsgrad=True), impl="torch_fused",
                 make=lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True, fused=True)),
            dict(key="rmsprop_momentum", optimizer="rmsprop", variant="momentum", bytes=28,
                 dtype=f32, fo=lambda ps: fo.RMSprop(ps, lr=1e-2, momentum=0.9),
                 impl="torch_foreach",
                 make=lambda ps: torch.optim.RMSprop(ps, lr=1e-2, momentum=0.9, foreach=True)),
            dict(key="rmsprop_centered", optimizer="rmsprop", variant="centered", bytes=28,
                 dtype=f32, fo=lambda ps: fo.RMSprop(ps, lr=1e-2, centered=True),
                 impl="torch_foreach",
                 make=lambda ps: torch.optim.RMSprop(ps, lr=1e-2, centered=True, foreach=True)),
        ]
    if bf16:
        # fusedopt with master weights moves master 4+4, grad 2, param 2, m and v 4+4 each (28);
        # with bf16 states and no master 2 bytes per access (14), as torch's fused bf16 step.
        specs += [
            dict(key="adam_bf16_master", optimizer="adam", variant="bf16_master", bytes=28,
                 torch_bytes=14, dtype=b16, tol=1e-2,
                 fo=lambda ps: fo.Adam(ps, lr=1e-3, master_weights=True), impl="torch_fused",
                 make=lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)),
            dict(key="adam_bf16_states", optimizer="adam", variant="bf16_states", bytes=14,
                 torch_bytes=14, dtype=b16, tol=1e-2,
                 fo=lambda ps: fo.Adam(ps, lr=1e-3, state_dtype=torch.bfloat16),
                 impl="torch_fused", make=lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)),
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
        # the device stays busy while the host enqueues the step (the L2 stays flushed)
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

def load_package(lib):
    """fusedopt and fusedopt.torch from this checkout's python/ (else an installed one), on the
    library given."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if lib:
        os.environ["FUSEDOPT_LIB"] = os.path.abspath(lib)
    pkg = os.path.join(root, "python")
    if os.path.isdir(os.path.join(pkg, "fusedopt")):
        sys.path.insert(0, pkg)
    import fusedopt
    import fusedopt.torch as fo
    return fusedopt, fo


CSV_HEADER = ["optimizer", "variant", "impl", "dtype", "tensors", "elements", "median_us",
              "bytes_per_elem", "gb_per_s", "pct_of_copy_bw", "max_rel_err", "device",
              "speedup_fused_vs_this"]
ROW_FMT = "%-8s %-11s %-17s %-10s %7d %11d %11.2f %8.1f %6s %11.2e %8.1f %9.2f"


def print_header():
    print("%-8s %-11s %-17s %-10s %7s %11s %11s %8s %6s %11s %8s %9s" % (
        "optimizer", "variant", "impl", "case", "tensors", "elements", "median_us", "GB/s",
        "%copy", "max_rel_err", "host_us", "x_fused"))


def gpu_part(torch, fusedopt, fo, args, w, t_start):
    """The GPU comparison; returns (compared, slower) for the summary."""
    budget = 0.15 if args.quick else 0.4
    max_reps = min(args.reps, 20) if args.quick else args.reps
    step_log2 = max(args.log2_step, 4) if args.quick else args.log2_step
    timer = Timer(torch, budget, max_reps)
    device = torch.cuda.get_device_name(0).replace(",", " ")
    copy_gbs = copy_bandwidth(torch)
    print("torch_compare: fusedopt %s (%s, package %s), PyTorch %s, %s, copy bandwidth %.1f GB/s "
          "(read + write)" % (fusedopt.version(), fusedopt.lib_path(),
                              os.path.dirname(fusedopt.__file__), torch.__version__, device,
                              copy_gbs))

    cases = []
    if not args.no_lists:
        cases += [("gpt2_small", gpt2_small_shapes()), ("small_10k", small_10k_shapes())]
    cases += [("2^%d" % k, [1 << k]) for k in range(args.min_log2, args.max_log2 + 1, step_log2)]
    specs = optimizer_specs(torch, fo, args.all_variants, not args.no_bf16)

    print_header()
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
            off += (n + 7) & ~7
        flat_p0 = torch.rand(off, device="cuda", generator=gen) * 2 - 1
        flat_g = torch.rand(off, device="cuda", generator=gen) * 2 - 1
        for spec in specs:
            print("[%s %s]" % (spec["key"], name), end="\r", file=sys.stderr, flush=True)
            dt = spec["dtype"]
            flush = total * spec["bytes"] < 4 * timer.l2
            # fusedopt on its own copy of the parameters; torch on another; same gradients
            f_flat = flat_p0.to(dt, copy=True)
            t_flat = flat_p0.to(dt, copy=True)
            g_flat = flat_g.to(dt)
            fp = [torch.nn.Parameter(f_flat[o:o + n]) for o, n in zip(offs, sizes)]
            tp = [torch.nn.Parameter(t_flat[o:o + n]) for o, n in zip(offs, sizes)]
            for p, q, o, n in zip(fp, tp, offs, sizes):
                p.grad = q.grad = g_flat[o:o + n]
            fopt = spec["fo"](fp)
            topt = spec["make"](tp)

            def fstep():
                fopt.step()

            def tstep():
                topt.step()

            for _ in range(VALIDATION_STEPS):
                fstep()
                tstep()
            torch.cuda.synchronize()
            with torch.no_grad():
                errs = torch.stack([(a.float() - b.float()).abs().max() / b.float().abs().max()
                                    for a, b in zip(fp, tp)])
                err = float(errs.max().item())  # NaN propagates through max
            f_us, f_host = timer.time(fstep, flush)
            t_us, t_host = timer.time(tstep, flush)
            fopt = topt = tp = fp = f_flat = t_flat = g_flat = None  # free before the next
            dname = "bf16" if dt == torch.bfloat16 else "fp32"
            for impl, us, host, nbytes in (("fused_ctypes", f_us, f_host, spec["bytes"]),
                                           (spec["impl"], t_us, t_host,
                                            spec.get("torch_bytes", spec["bytes"]))):
                gbs = total * nbytes / (us * 1e-6) * 1e-9
                pct = 100.0 * gbs / copy_gbs
                ratio = us / f_us
                print(ROW_FMT % (spec["optimizer"], spec["variant"], impl, name, len(sizes), total,
                                 us, gbs, "%.1f" % pct, err, host, ratio), flush=True)
                if w:
                    w.writerow([spec["optimizer"], spec["variant"], impl, dname, len(sizes),
                                total, "%.3f" % us, nbytes, "%.3f" % gbs, "%.2f" % pct,
                                "%.3e" % err, device, "%.3f" % ratio])
            compared += 1
            if t_us <= f_us:
                slower.append("%s %s (fusedopt %.1f us, torch %.1f us)"
                              % (spec["key"], name, f_us, t_us))
            if not (err < spec.get("tol", 1e-4)):
                print("# WARNING: %s %s: fusedopt and torch differ by %.2e after %d steps"
                      % (spec["key"], name, err, VALIDATION_STEPS))
        del flat_p0, flat_g
        torch.cuda.empty_cache()
        print()
    return compared, slower


def cpu_part(torch, fusedopt, fo, args, w):
    """fusedopt.torch.Adam on CPU tensors against torch.optim.Adam (foreach and single-tensor),
    GPT-2 small shapes. Returns the summary line."""
    sizes = [max(1, int(round(n * args.cpu_scale))) for n in gpt2_small_shapes()]
    total = sum(sizes)
    threads = args.cpu_threads or fusedopt.cpu_threads()
    fusedopt.set_cpu_threads(threads)
    torch_threads_before = torch.get_num_threads()
    torch_threads = args.cpu_torch_threads or threads
    torch.set_num_threads(torch_threads)
    cpu_name = "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    device = "%s (%d threads %s)" % (cpu_name.replace(",", " "), threads, fusedopt.cpu_isa())
    print("torch_compare: CPU offload: Adam on %d CPU tensors (GPT-2 small shapes x %g, %.1fM "
          "params), %d threads for fusedopt (%s), %d for PyTorch %s (its default: %d)"
          % (len(sizes), args.cpu_scale, total / 1e6, threads, fusedopt.cpu_isa(), torch_threads,
             torch.__version__, torch_threads_before))
    gen = torch.Generator().manual_seed(4321)
    p0 = [torch.rand(n, generator=gen) * 2 - 1 for n in sizes]
    grads = [(torch.rand(n, generator=gen) * 2 - 1) * 1e-2 for n in sizes]
    impls = [("cpu_torch_single", lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=False)),
             ("cpu_torch_foreach", lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True)),
             ("cpu_fusedopt", lambda ps: fo.Adam(ps, lr=1e-3))]
    results = {}
    ref = None
    for impl, make in impls:
        ps = [torch.nn.Parameter(x.clone()) for x in p0]
        for p, g in zip(ps, grads):
            p.grad = g
        try:
            opt = make(ps)
        except TypeError:   # a PyTorch without foreach
            continue
        with torch.no_grad():
            for _ in range(VALIDATION_STEPS):
                opt.step()
            if ref is None:
                ref = [p.detach().clone() for p in ps]
                err = 0.0
            else:
                err = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ps, ref))
            times = []
            t_end = time.perf_counter() + args.cpu_budget
            while len(times) < args.cpu_reps and (len(times) < 3 or time.perf_counter() < t_end):
                t0 = time.perf_counter()
                opt.step()
                times.append(time.perf_counter() - t0)
        results[impl] = (statistics.median(times) * 1e6, err, len(times))
        del opt, ps
    torch.set_num_threads(torch_threads_before)
    f_us = results["cpu_fusedopt"][0]
    for impl, _ in impls:
        if impl not in results:
            continue
        us, err, reps = results[impl]
        gbs = total * 28 / (us * 1e-6) * 1e-9
        print(ROW_FMT % ("adam", "cpu_offload", impl, "gpt2_small", len(sizes), total, us, gbs,
                         "", err, us, us / f_us), flush=True)
        if w:
            w.writerow(["adam", "cpu_offload", impl, "fp32", len(sizes), total, "%.3f" % us, 28,
                        "%.3f" % gbs, "", "%.3e" % err, device, "%.3f" % (us / f_us)])
        if not (err < 1e-4):
            print("# WARNING: CPU %s differs from torch's single-tensor Adam by %.2e" % (impl, err))
    parts = ["fusedopt %.1f ms" % (f_us / 1e3)]
    for impl, label in (("cpu_torch_foreach", "torch foreach"),
                        ("cpu_torch_single", "torch single-tensor")):
        if impl in results:
            parts.append("%s %.1f ms (%.2fx)" % (label, results[impl][0] / 1e3,
                                                 results[impl][0] / f_us))
    tt = "" if torch_threads == threads else " (torch %d)" % torch_threads
    return ("CPU offload, Adam step on %d tensors / %.1fM params, %d threads%s: %s"
            % (len(sizes), total / 1e6, threads, tt, ", ".join(parts)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("lib", nargs="?", default=None,
                    help="path to libfusedopt.so (default: FUSEDOPT_LIB, else the package's "
                         "search: build/libfusedopt.so of this checkout, then installed)")
    ap.add_argument("--csv", help="write the results as CSV")
    ap.add_argument("--min-log2", type=int, default=20)
    ap.add_argument("--max-log2", type=int, default=28)
    ap.add_argument("--log2-step", type=int, default=2)
    ap.add_argument("--reps", type=int, default=100, help="most timed repetitions per case")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--no-lists", action="store_true", help="skip the GPT-2 and 10k lists")
    ap.add_argument("--all-variants", action="store_true",
                    help="also AMSGrad, RMSprop with momentum, centered RMSprop")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 rows (GPU)")
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU comparison")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU offload rows")
    ap.add_argument("--cpu-scale", type=float, default=1.0,
                    help="CPU offload: scale every GPT-2 small tensor by this factor (1: 124.4M)")
    ap.add_argument("--cpu-threads", type=int, default=0,
                    help="CPU offload: threads for both (default: fusedopt's, every core)")
    ap.add_argument("--cpu-torch-threads", type=int, default=0,
                    help="CPU offload: PyTorch's threads if not the same as fusedopt's")
    ap.add_argument("--cpu-reps", type=int, default=15, help="CPU offload: most timed steps")
    ap.add_argument("--cpu-budget", type=float, default=10.0,
                    help="CPU offload: seconds of timed steps per implementation (at least 3)")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="start no new case after this many seconds")
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        print("torch_compare: PyTorch is not installed here; nothing to compare (skipped)")
        return 0
    fusedopt, fo = load_package(args.lib)

    out = None
    w = None
    if args.csv:
        out = open(args.csv, "w", newline="")
        w = csv.writer(out)
        w.writerow(CSV_HEADER)
    t_start = time.perf_counter()
    gpu = None
    if args.no_gpu:
        print("torch_compare: GPU comparison not asked for (--no-gpu)")
    elif not torch.cuda.is_available():
        print("torch_compare: no CUDA device visible to PyTorch; comparison SKIPPED")
    else:
        gpu = gpu_part(torch, fusedopt, fo, args, w, t_start)
    cpu_line = None
    if not args.no_cpu:
        elapsed = time.perf_counter() - t_start
        if args.time_budget and elapsed > args.time_budget:
            cpu_line = "CPU offload rows skipped: time budget of %.0f s reached" % args.time_budget
        else:
            if args.time_budget:  # the timed steps of the three implementations fit the rest
                args.cpu_budget = min(args.cpu_budget, max(1.0, (args.time_budget - elapsed) / 4))
            if gpu is None:
                print_header()
            cpu_line = cpu_part(torch, fusedopt, fo, args, w)
    print("== torch_compare summary (%.0f s) ==" % (time.perf_counter() - t_start))
    if gpu is not None:
        compared, slower = gpu
        if slower:
            print("fusedopt NOT faster than PyTorch on %d of %d cases:" % (len(slower), compared))
            for line in slower:
                print("  " + line)
        else:
            print("fusedopt faster than PyTorch on all %d cases" % compared)
    else:
        print("GPU comparison skipped (no CUDA device)" if not args.no_gpu else
              "GPU comparison skipped (--no-gpu)")
    if cpu_line:
        print(cpu_line)
    if out:
        out.close()
        print("CSV: " + args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
