#!/usr/bin/python3
"""Golden vectors for fusedopt's optimizers, computed by real PyTorch.

Run with Debian's interpreter, which has torch 1.13 (package python3-torch):

    /usr/bin/python3 scripts/gen_golden.py            # writes tests/data/golden_{adam,rmsprop}.bin

Every case runs torch.optim.Adam / AdamW / RMSprop with foreach=False (the single-tensor code path
that docs/SEMANTICS.md follows) on one float32 CPU tensor, starting from a stored initial state,
for `steps` steps with a fresh gradient each step, and stores the final parameter and state.
Seeds are fixed: the same torch and numpy give the same bytes.

File format (little endian), read by tests/golden.c:

    char     magic[8]   = "FOPTGOLD"
    u32      version    = 1
    u32      case_count
    then case_count cases, each:
      char   name[64]         NUL-terminated, NUL-padded
      u32    optimizer        0 Adam/AdamW, 1 RMSprop
      u32    flags            bit0 decoupled weight decay (AdamW), bit1 amsgrad, bit2 maximize,
                              bit3 centered
      f64    lr, beta1_or_alpha, beta2, eps, weight_decay, momentum   (unused ones 0)
      i64    first_step       step number of the first update (counting from 1); RMSprop: 1
      u32    steps
      u32    pad = 0
      u64    n
      f32    param0[n]
      f32    state0_0[n], state0_1[n], state0_2[n]     initial state
      f32    grads[steps][n]                           the raw gradient of each step
      f32    param[n]                                  expected after the last step
      f32    state_0[n], state_1[n], state_2[n]        expected state after the last step
    State slots: Adam 0 exp_avg, 1 exp_avg_sq, 2 max_exp_avg_sq (amsgrad only);
                 RMSprop 0 square_avg, 1 momentum_buffer (momentum > 0 only),
                 2 grad_avg (centered only). Unused slots are all zero.

No case lets centered RMSprop's v - ga*ga go negative (PyTorch takes sqrt of it and gives NaN
where fusedopt clamps at 0); the script refuses to write NaN anywhere. Infinities appear only in
the huge-gradient cases, where (1-beta2)*g*g overflows.
"""
import math
import os
import struct
import sys

import numpy as np
import torch

MAGIC = b"FOPTGOLD"
VERSION = 1
ADAM, RMSPROP = 0, 1
F_DECOUPLED, F_AMSGRAD, F_MAXIMIZE, F_CENTERED = 1, 2, 4, 8

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def magnitudes(rng, n, lo_exp, hi_exp, zero_frac=1.0 / 16):
    """sign * 10^U(lo_exp, hi_exp) as float32, about zero_frac of them exactly 0."""
    e = rng.uniform(lo_exp, hi_exp, n)
    sign = np.where(rng.integers(0, 2, n) == 1, 1.0, -1.0)
    x = sign * np.power(10.0, e)
    if zero_frac > 0:
        x[rng.uniform(0.0, 1.0, n) < zero_frac] = 0.0
    return x.astype(np.float32)


def grads_normal(rng, n, steps):
    return [magnitudes(rng, n, -6.0, 2.0) for _ in range(steps)]


def grads_huge(rng, n, steps):
    """A tenth of the elements each step ~1e17..3e21: (1-beta2)*g*g reaches 1e31.. and overflows
    to inf above ~6e20 (beta2 0.999) or ~2e20 (alpha 0.99), after which that element's second
    moment stays inf and its parameter stops moving; the rest ordinary."""
    out = []
    for _ in range(steps):
        g = magnitudes(rng, n, -6.0, 2.0)
        big = rng.uniform(0.0, 1.0, n) < 0.1
        g[big] = magnitudes(rng, int(big.sum()), 17.0, 21.5, zero_frac=0.0)
        out.append(g)
    return out


def grads_tiny(rng, n, steps):
    """~1e-32..1e-28: g*g (and (1-beta)*g*g) underflow to 0."""
    return [magnitudes(rng, n, -32.0, -28.0) for _ in range(steps)]


def params_uniform(rng, n):
    return rng.uniform(-1.0, 1.0, n).astype(np.float32)


def zeros(n):
    return np.zeros(n, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Running PyTorch
# ---------------------------------------------------------------------------------------------
def run_adam(cfg, first_step, param0, state0, grads):
    p = torch.nn.Parameter(torch.from_numpy(param0.copy()))
    kw = dict(lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
              weight_decay=cfg["wd"], amsgrad=cfg["amsgrad"], maximize=cfg["maximize"],
              foreach=False)
    opt = (torch.optim.AdamW if cfg["decoupled"] else torch.optim.Adam)([p], **kw)
    st = opt.state[p]
    st["step"] = torch.tensor(float(first_step - 1))  # float32 scalar, as torch 1.13 keeps it
    st["exp_avg"] = torch.from_numpy(state0[0].copy())
    st["exp_avg_sq"] = torch.from_numpy(state0[1].copy())
    if cfg["amsgrad"]:
        st["max_exp_avg_sq"] = torch.from_numpy(state0[2].copy())
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    assert float(st["step"]) == first_step - 1 + len(grads)
    out = [st["exp_avg"].numpy(), st["exp_avg_sq"].numpy(),
           st["max_exp_avg_sq"].numpy() if cfg["amsgrad"] else zeros(len(param0))]
    return p.detach().numpy().copy(), [o.copy() for o in out]


def run_rmsprop(cfg, param0, state0, grads):
    p = torch.nn.Parameter(torch.from_numpy(param0.copy()))
    opt = torch.optim.RMSprop([p], lr=cfg["lr"], alpha=cfg["alpha"], eps=cfg["eps"],
                              weight_decay=cfg["wd"], momentum=cfg["momentum"],
                              centered=cfg["centered"], maximize=cfg["maximize"], foreach=False)
    st = opt.state[p]
    st["step"] = 0
    st["square_avg"] = torch.from_numpy(state0[0].copy())
    if cfg["momentum"] > 0:
        st["momentum_buffer"] = torch.from_numpy(state0[1].copy())
    if cfg["centered"]:
        st["grad_avg"] = torch.from_numpy(state0[2].copy())
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    n = len(param0)
    out = [st["square_avg"].numpy(),
           st["momentum_buffer"].numpy() if cfg["momentum"] > 0 else zeros(n),
           st["grad_avg"].numpy() if cfg["centered"] else zeros(n)]
    return p.detach().numpy().copy(), [o.copy() for o in out]


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------
def adam_cfg(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0, decoupled=False, amsgrad=False,
             maximize=False):
    return dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, wd=wd, decoupled=decoupled,
                amsgrad=amsgrad, maximize=maximize)


def rmsprop_cfg(lr=1e-2, alpha=0.99, eps=1e-8, wd=0.0, momentum=0.0, centered=False,
                maximize=False):
    return dict(lr=lr, alpha=alpha, eps=eps, wd=wd, momentum=momentum, centered=centered,
                maximize=maximize)


def make_case(name, opt, cfg, n, steps, seed, gradgen=grads_normal, first_step=1,
              warm_state=False):
    assert len(name) < 64
    rng = np.random.default_rng(seed)
    param0 = params_uniform(rng, n)
    grads = gradgen(rng, n, steps)
    state0 = [zeros(n), zeros(n), zeros(n)]
    if warm_state:
        if opt == ADAM:
            m = magnitudes(rng, n, -4.0, 0.0)
            v = (m.astype(np.float64) ** 2 * rng.uniform(1.0, 10.0, n)).astype(np.float32)
            state0[0], state0[1] = m, v
            if cfg["amsgrad"]:
                state0[2] = (v * rng.uniform(1.0, 2.0, n)).astype(np.float32)
        else:
            # square_avg well above grad_avg^2, so the centered variance stays positive
            ga = magnitudes(rng, n, -4.0, 0.0)
            v = (ga.astype(np.float64) ** 2 * rng.uniform(2.0, 10.0, n)
                 + np.power(10.0, rng.uniform(-8.0, -2.0, n))).astype(np.float32)
            state0[0] = v
            if cfg["momentum"] > 0:
                state0[1] = magnitudes(rng, n, -3.0, 1.0)
            if cfg["centered"]:
                state0[2] = ga

    if opt == ADAM:
        param, state = run_adam(cfg, first_step, param0, state0, grads)
        flags = ((F_DECOUPLED if cfg["decoupled"] else 0) | (F_AMSGRAD if cfg["amsgrad"] else 0)
                 | (F_MAXIMIZE if cfg["maximize"] else 0))
        scal = (cfg["lr"], cfg["beta1"], cfg["beta2"], cfg["eps"], cfg["wd"], 0.0)
    else:
        assert first_step == 1
        param, state = run_rmsprop(cfg, param0, state0, grads)
        flags = ((F_MAXIMIZE if cfg["maximize"] else 0) | (F_CENTERED if cfg["centered"] else 0))
        scal = (cfg["lr"], cfg["alpha"], 0.0, cfg["eps"], cfg["wd"], cfg["momentum"])

    for arr, what in [(param, "param")] + [(s, "state%d" % i) for i, s in enumerate(state)]:
        if np.isnan(arr).any():
            sys.exit("case %s: PyTorch produced NaN in %s; change the case" % (name, what))
        if np.isinf(arr).any() and gradgen is not grads_huge:
            sys.exit("case %s: PyTorch produced inf in %s; change the case" % (name, what))

    if gradgen is not grads_normal:
        print("  %-40s inf in state: %s, exact zeros in state_1: %d/%d" % (
            name, [int(np.isinf(s).sum()) for s in state], int((state[1] == 0).sum()), n))

    blob = bytearray()
    blob += struct.pack("<64sII6dqIIQ", name.encode(), opt, flags, *scal, first_step, steps, 0, n)
    for a in [param0] + state0 + grads + [param] + state:
        assert a.dtype == np.float32 and a.shape == (n,)
        blob += a.astype("<f4").tobytes()
    return name, blob


def adam_cases():
    variants = [
        ("adam_default", adam_cfg()),
        ("adam_l2_wd0.1", adam_cfg(wd=0.1)),
        ("adamw_wd0.01", adam_cfg(wd=0.01, decoupled=True)),
        ("adamw_wd0.1_lr1e-2", adam_cfg(lr=1e-2, wd=0.1, decoupled=True)),
        ("adam_amsgrad", adam_cfg(amsgrad=True)),
        ("adamw_amsgrad_wd0.01", adam_cfg(wd=0.01, decoupled=True, amsgrad=True)),
        ("adam_maximize", adam_cfg(maximize=True)),
        ("adam_maximize_l2_wd0.1", adam_cfg(wd=0.1, maximize=True)),
        ("adamw_maximize_wd0.05", adam_cfg(wd=0.05, decoupled=True, maximize=True)),
        ("adam_amsgrad_maximize_l2", adam_cfg(wd=0.02, amsgrad=True, maximize=True)),
        # 1 - beta1 >= 0.5: PyTorch's lerp switches to its other form
        ("adam_beta1_0.3_lr3e-2_b2_0.95_eps1e-6",
         adam_cfg(lr=3e-2, beta1=0.3, beta2=0.95, eps=1e-6)),
        ("adamw_beta1_0.0_amsgrad", adam_cfg(lr=2e-3, beta1=0.0, beta2=0.9, wd=0.3,
                                             decoupled=True, amsgrad=True)),
    ]
    big = {"adam_default", "adamw_amsgrad_wd0.01", "adam_beta1_0.3_lr3e-2_b2_0.95_eps1e-6"}
    cases = []
    seed = 1000
    for vname, cfg in variants:
        sizes = [1, 3, 5, 17, 1001] + ([4097] if vname in big else [])
        for n in sizes:
            seed += 1
            cases.append(make_case("%s_n%d" % (vname, n), ADAM, cfg, n, 25, seed))
    # edge cases
    cases += [
        make_case("adam_step1_only_n1001", ADAM, adam_cfg(), 1001, 1, 2001),
        make_case("adamw_amsgrad_step1_only_n17", ADAM,
                  adam_cfg(wd=0.01, decoupled=True, amsgrad=True), 17, 1, 2002),
        make_case("adam_step1e6_warm_n1001", ADAM, adam_cfg(), 1001, 5, 2003,
                  first_step=1000000, warm_state=True),
        make_case("adamw_amsgrad_step1e6_warm_n33", ADAM,
                  adam_cfg(wd=0.01, decoupled=True, amsgrad=True), 33, 5, 2004,
                  first_step=1000000, warm_state=True),
        make_case("adam_l2_step30_warm_n257", ADAM, adam_cfg(wd=0.1, beta1=0.8), 257, 25, 2005,
                  first_step=30, warm_state=True),
        make_case("adam_huge_grads_n1001", ADAM, adam_cfg(), 1001, 25, 2006, grads_huge),
        make_case("adamw_amsgrad_huge_grads_n17", ADAM,
                  adam_cfg(wd=0.01, decoupled=True, amsgrad=True), 17, 25, 2007, grads_huge),
        make_case("adam_tiny_grads_n1001", ADAM, adam_cfg(), 1001, 25, 2008, grads_tiny),
        make_case("adam_amsgrad_tiny_grads_n5", ADAM, adam_cfg(amsgrad=True), 5, 25, 2009,
                  grads_tiny),
    ]
    return cases


def rmsprop_cases():
    variants = [
        ("rmsprop_default", rmsprop_cfg()),
        ("rmsprop_wd0.05", rmsprop_cfg(wd=0.05)),
        ("rmsprop_momentum0.9", rmsprop_cfg(momentum=0.9)),
        ("rmsprop_centered", rmsprop_cfg(centered=True)),
        ("rmsprop_centered_momentum0.9", rmsprop_cfg(centered=True, momentum=0.9)),
        ("rmsprop_maximize", rmsprop_cfg(maximize=True)),
        ("rmsprop_maximize_momentum_wd", rmsprop_cfg(maximize=True, momentum=0.5, wd=0.01)),
        # 1 - alpha >= 0.5: grad_avg's lerp takes PyTorch's other form
        ("rmsprop_alpha0.3_centered", rmsprop_cfg(alpha=0.3, centered=True)),
        ("rmsprop_eps1e-3_lr1e-3", rmsprop_cfg(lr=1e-3, eps=1e-3)),
        ("rmsprop_all_on", rmsprop_cfg(lr=3e-3, alpha=0.9, eps=1e-6, wd=0.1, momentum=0.3,
                                       centered=True, maximize=True)),
        ("rmsprop_alpha0", rmsprop_cfg(alpha=0.0, momentum=0.2)),
    ]
    big = {"rmsprop_default", "rmsprop_centered_momentum0.9"}
    cases = []
    seed = 5000
    for vname, cfg in variants:
        sizes = [1, 3, 5, 17, 1001] + ([4097] if vname in big else [])
        for n in sizes:
            seed += 1
            cases.append(make_case("%s_n%d" % (vname, n), RMSPROP, cfg, n, 25, seed))
    cases += [
        make_case("rmsprop_step1_only_centered_n1001", RMSPROP, rmsprop_cfg(centered=True),
                  1001, 1, 6001),
        make_case("rmsprop_warm_centered_momentum_n1001", RMSPROP,
                  rmsprop_cfg(centered=True, momentum=0.9), 1001, 25, 6002, warm_state=True),
        make_case("rmsprop_huge_grads_n1001", RMSPROP, rmsprop_cfg(), 1001, 25, 6003, grads_huge),
        make_case("rmsprop_momentum_huge_grads_n17", RMSPROP, rmsprop_cfg(momentum=0.9), 17, 25,
                  6004, grads_huge),
        make_case("rmsprop_tiny_grads_n1001", RMSPROP, rmsprop_cfg(), 1001, 25, 6005, grads_tiny),
        make_case("rmsprop_centered_momentum_tiny_grads_n5", RMSPROP,
                  rmsprop_cfg(centered=True, momentum=0.9), 5, 25, 6006, grads_tiny),
    ]
    return cases


def write(file_name, cases):
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    data = bytearray(MAGIC) + struct.pack("<II", VERSION, len(cases))
    for _, blob in cases:
        data += blob
    path = os.path.join(OUT_DIR, file_name)
    with open(path, "wb") as f:
        f.write(data)
    print("%s: %d cases, %d bytes" % (os.path.relpath(path), len(cases), len(data)))


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("torch", torch.__version__)
    os.makedirs(OUT_DIR, exist_ok=True)
    write("golden_adam.bin", adam_cases())
    write("golden_rmsprop.bin", rmsprop_cases())


if __name__ == "__main__":
    main()
