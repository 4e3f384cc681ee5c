#!/usr/bin/python3
"""Plots the loss curves of examples/digits_mlp{,_gpu}: training loss (log scale) and learning rate
against the epoch on the left, test accuracy on the right, one line per CSV.

    /usr/bin/python3 scripts/plot_digits.py build/digits/cpu.csv [build/digits/gpu.csv ...] \\
        -o build/digits/digits.png [--title TEXT]

Each CSV has the columns epoch,train_loss,test_acc,lr (test_acc a fraction); a line is labelled
with its file name without the extension, or LABEL=PATH names it."""
import argparse
import csv
import os
import sys


def read(path):
    cols = {"epoch": [], "train_loss": [], "test_acc": [], "lr": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                vals = {k: float(row[k]) for k in cols}
            except (KeyError, TypeError, ValueError):
                continue
            for k in cols:
                cols[k].append(vals[k])
    return cols


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+", help="CSV file, or LABEL=CSV")
    ap.add_argument("-o", "--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="MLP 64-128-10 on sklearn digits, AdamW (fusedopt)")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_digits.py: no matplotlib - install Debian's python3-matplotlib "
                 "(apt-get install python3-matplotlib) and run this with /usr/bin/python3")

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_lr = ax_loss.twinx()
    plotted = 0
    lowest = 100.0
    for spec in args.csv:
        label, path = spec.split("=", 1) if "=" in spec else (
            os.path.splitext(os.path.basename(spec))[0], spec)
        c = read(path)
        if not c["epoch"]:
            print("plot_digits.py: %s has no rows, skipped" % path, file=sys.stderr)
            continue
        line, = ax_loss.plot(c["epoch"], c["train_loss"], marker=".", label=label + " train loss")
        ax_acc.plot(c["epoch"], [100.0 * a for a in c["test_acc"]], marker=".",
                    color=line.get_color(), label="%s (final %.2f%%)" % (label, 100.0 * c["test_acc"][-1]))
        lowest = min(lowest, 100.0 * min(c["test_acc"]))
        if plotted == 0:  # the schedule is the same for every run
            ax_lr.plot(c["epoch"], c["lr"], color="gray", linestyle="--", label="lr")
        plotted += 1
    if not plotted:
        sys.exit("plot_digits.py: nothing to plot")

    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("mean training loss (cross-entropy)")
    ax_lr.set_ylabel("learning rate (end of epoch)", color="gray")
    lines = ax_loss.get_legend_handles_labels()
    lr_lines = ax_lr.get_legend_handles_labels()
    ax_loss.legend(lines[0] + lr_lines[0], lines[1] + lr_lines[1], loc="upper right")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.axhline(95.0, color="red", linestyle=":", linewidth=1, label="95% target")
    ax_acc.set_ylim(max(0.0, min(lowest, 94.0) - 1.0), 100.0)
    ax_acc.legend(loc="lower right")
    ax_acc.grid(True, alpha=0.3)
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("plot_digits.py: wrote %s" % args.out)


if __name__ == "__main__":
    main()
