#!/usr/bin/env python3
"""Plots fopt_bench / torch_compare CSVs: throughput (GB/s of the bytes a step must move in its
storage mode) against the element count, one subplot per optimizer variant and storage mode (the
CSV's dtype column: fp32 panels first, then one per mode: bf16_master, bf16_remainder, bf16_sr,
fp16_master, fp32_bf16_states), one line per implementation over the single tensors, a marker per
implementation for the tensor lists (star: GPT-2 small, triangle: 10,000 small tensors), and the
measured copy bandwidth as a dashed roof.

    python3 bench/plot.py results.csv [torch.csv ...] -o results.png [--title TEXT]

The copy bandwidth is not a column: it is read back from any GPU row as
gb_per_s * 100 / pct_of_copy_bw. A CSV without GPU rows plots without a roof. Rows of the
emulated device (device "emulated ...") are left out: their timings are not GPU figures."""
import argparse
import csv
import math
import statistics
import sys


GPU_IMPLS = ("fused", "unfused", "torch")


def read_rows(paths):
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                try:
                    r["tensors"] = int(r["tensors"])
                    r["elements"] = int(r["elements"])
                    r["gb_per_s"] = float(r["gb_per_s"])
                except (KeyError, ValueError):
                    continue
                if not math.isfinite(r["gb_per_s"]) or r["gb_per_s"] <= 0:
                    continue
                if (r.get("device") or "").startswith("emulated"):
                    continue
                r["dtype"] = r.get("dtype") or "fp32"
                rows.append(r)
    return rows


def copy_roof(rows):
    roofs = []
    for r in rows:
        if not r["impl"].startswith(GPU_IMPLS):
            continue  # CPU rows of fopt_cpu_bench put % of their roofline there
        pct = r.get("pct_of_copy_bw", "")
        try:
            pct = float(pct)
        except ValueError:
            continue
        if pct > 0:
            roofs.append(r["gb_per_s"] * 100.0 / pct)
    return statistics.median(roofs) if roofs else None


def main():
    ap = argparse.ArgumentParser(description="fopt_bench CSV -> PNG")
    ap.add_argument("csv", nargs="+")
    ap.add_argument("-o", "--output", required=True, help="PNG file to write")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(args.csv)
    if not rows:
        print("plot.py: no rows in %s" % ", ".join(args.csv), file=sys.stderr)
        return 1
    panels = []
    for r in rows:
        key = (r["optimizer"], r["variant"], r["dtype"])
        if key not in panels:
            panels.append(key)
    panels.sort(key=lambda k: k[2] != "fp32")  # fp32 first, then the modes (stable)
    impls = []
    for r in rows:
        if r["impl"] not in impls:
            impls.append(r["impl"])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {impl: colors[i % len(colors)] for i, impl in enumerate(impls)}
    roof = copy_roof(rows)
    devices = sorted({r.get("device", "") for r in rows if r["impl"].startswith(GPU_IMPLS)})

    ncols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5 * ncols, 4.6 * nrows), squeeze=False)
    for ax, (opt, var, dtype) in zip(axes.flat, panels):
        sub = [r for r in rows if (r["optimizer"], r["variant"], r["dtype"]) == (opt, var, dtype)]
        for impl in impls:
            single = sorted((r["elements"], r["gb_per_s"]) for r in sub
                            if r["impl"] == impl and r["tensors"] == 1)
            lists = [r for r in sub if r["impl"] == impl and r["tensors"] > 1]
            if not single and not lists:
                continue
            if single:
                ax.plot([s[0] for s in single], [s[1] for s in single], "o-", ms=3.5, lw=1.4,
                        color=color[impl], label=impl)
            for r in lists:
                marker = "*" if r["tensors"] < 1000 else "^"
                ax.plot(r["elements"], r["gb_per_s"], marker, ms=10 if marker == "*" else 7,
                        color=color[impl], mec="black", mew=0.5,
                        label=None if single else impl)
        if roof:
            ax.axhline(roof, ls="--", color="gray", lw=1)
            ax.text(ax.get_xlim()[0] if ax.get_xlim()[0] > 0 else 1e3, roof * 1.06,
                    "copy bandwidth %.0f GB/s" % roof, fontsize=8, color="gray")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        name = "%s (%s)" % (opt, var) if var != "plain" else opt
        ax.set_title(name if dtype == "fp32" else "%s, %s" % (name, dtype))
        ax.set_xlabel("elements per step (markers: * GPT-2 small list, ^ 10,000 small tensors)",
                      fontsize=8)
        ax.set_ylabel("GB/s of the bytes a step must move")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    title = args.title or ("fusedopt step throughput" + (" - " + ", ".join(d for d in devices if d)
                                                         if devices else " (CPU only)"))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(args.output, dpi=110)
    print("plot.py: wrote %s (%d panels)" % (args.output, len(panels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
