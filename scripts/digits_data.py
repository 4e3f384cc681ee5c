#!/usr/bin/python3
"""Converts scikit-learn's handwritten digits (sklearn.datasets.load_digits: 1797 images of 8x8
pixels, values 0..16, classes 0..9) into the binary file that examples/digits_mlp{,_gpu} read.

    /usr/bin/python3 scripts/digits_data.py build/digits/digits.bin [--seed 0] [--test-fraction 0.2]

Features are scaled to [0, 1] (divided by 16). The train/test split is a fixed permutation of the
samples drawn from numpy's RandomState(seed) (a generator whose stream numpy keeps stable across
versions); the last round(test_fraction * 1797) samples of it are the test set (360 by default).
The same sklearn data and seed give the same bytes.

File format (little endian), read by examples/digits_common.c:

    char  magic[8]  = "FOPTDIGT"
    u32   version   = 1
    u32   n_train
    u32   n_test
    u32   features  = 64
    u32   classes   = 10
    u32   seed        the split's seed (informative)
    f32   train_x[n_train][features]
    i32   train_y[n_train]
    f32   test_x[n_test][features]
    i32   test_y[n_test]
"""
import argparse
import os
import struct
import sys

MAGIC = b"FOPTDIGT"
VERSION = 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output file, e.g. build/digits/digits.bin")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split's permutation (0)")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="share of test samples (0.2)")
    args = ap.parse_args()
    if not 0.0 < args.test_fraction < 1.0:
        sys.exit("digits_data.py: --test-fraction must be in (0, 1)")

    try:
        import numpy as np
        from sklearn.datasets import load_digits
    except ImportError as e:
        sys.exit("digits_data.py: %s - install Debian's python3-sklearn (apt-get install "
                 "python3-sklearn) and run this with /usr/bin/python3" % e)

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    n, features = x.shape
    classes = int(y.max()) + 1
    if n != 1797 or features != 64 or classes != 10 or x.min() < 0.0 or x.max() > 1.0:
        sys.exit("digits_data.py: unexpected data: %d samples, %d features, %d classes"
                 % (n, features, classes))

    perm = np.random.RandomState(args.seed).permutation(n)
    n_test = int(round(args.test_fraction * n))
    n_train = n - n_test
    train, test = perm[:n_train], perm[n_train:]

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<6I", VERSION, n_train, n_test, features, classes, args.seed))
        for idx in (train, test):
            f.write(x[idx].astype("<f4").tobytes())
            f.write(y[idx].astype("<i4").tobytes())
    os.replace(tmp, args.out)
    counts = np.bincount(y[train], minlength=classes)
    print("digits: %d train + %d test samples, %d features, %d classes (train per class %d..%d)"
          " -> %s" % (n_train, n_test, features, classes, counts.min(), counts.max(), args.out))


if __name__ == "__main__":
    main()
