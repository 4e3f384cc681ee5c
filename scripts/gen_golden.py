#!/usr/bin/python3
"""Golden vectors for fusedopt's optimizers, computed by real PyTorch.

Run with Debian's interpreter, which has torch 1.13 (package python3-torch); the first python3 on
PATH may lack torch:

    /usr/bin/python3 scripts/gen_golden.py            # golden_{adam,rmsprop}.bin (format 1)
    /usr/bin/python3 scripts/gen_golden.py mixed      # golden_mixed.bin (format 2)
    /usr/bin/python3 scripts/gen_golden.py amp        # golden_amp.bin (format 2)
    /usr/bin/python3 scripts/gen_golden.py ext        # both format-2 files
    /usr/bin/python3 scripts/gen_golden.py all        # all four
    ... --out-dir DIR                                 # elsewhere than tests/data (to compare bytes)

Seeds are fixed: the same torch, numpy and CPU give the same bytes (torch picks its kernels by
CPU capability; these were made with Debian's torch 1.13, 1.13.0a0 built from 1.13.1+dfsg, on its
AVX2 kernels). Regenerating the format-1 files gives them byte for byte; adding cases to one list
shifts no other list's seeds.

Format 1 (golden_adam.bin, golden_rmsprop.bin; read by tests/golden.c)
-----------------------------------------------------------------------
Every case runs torch.optim.Adam / AdamW / RMSprop with foreach=False (the single-tensor code path
that docs/SEMANTICS.md follows) on one float32 CPU tensor, starting from a stored initial state,
for `steps` steps with a fresh gradient each step, and stores the final parameter and state.

File format (little endian):

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

Format 2 (golden_mixed.bin, golden_amp.bin; read by tests/golden_ext.c)
------------------------------------------------------------------------
Multi-tensor cases (one optimizer, one param group, over 1..N tensors) with a storage type for
params and grads, one for the states, optional fp32 master weights, and per-step AMP/clipping
options, for the fopt_*_step_*_multi entry points. States start at zero, the step counter at 1.

    magic, version = 2 and case_count as in format 1, then case_count cases, each:
      name, optimizer, flags and the six f64 hyper-parameters as in format 1
      u32    dtype            of params and grads (fopt_dtype): 0 fp32, 1 fp16, 2 bf16
      u32    state_dtype      0 fp32, 2 bf16
      u32    master_weights   0 or 1 (1 only with a 16-bit dtype)
      u32    tensor_count     T >= 1
      u32    steps            >= 1
      u32    pad = 0
      u64    numel[T]
      param0 of each tensor   numel elements in dtype
      steps records, each:
        u32  step_flags       bit0 grad_scale passed (else NULL and scale = 1),
                              bit1 found_inf asked for (else NULL: no check),
                              bit2 grad_norm asked for (else NULL)
        f32  scale            the loss scale S
        f64  max_grad_norm    0: no clipping
        i32  found_inf        expected: 1 when some unscaled grad is inf/NaN (only with bit1)
        f32  grad_norm        expected float32 of the global norm (stored even when not asked
                              for); when found_inf is 1, torch's non-finite norm, not compared
        grads of each tensor  numel elements in dtype: the SCALED raw grads (inf/NaN included)
      then for each tensor, expected after the last step:
        param                 numel elements in dtype
        master                numel f32 (only with master_weights)
        each USED state slot  numel elements in state_dtype, slot order as in format 1
    Elements: f32 little endian; fp16/bf16 as their 16-bit patterns, little endian.

Semantics emulated with torch (run_ext), per step:
  1. g = float32(stored grad) / S, an fp32 division (numpy; not a multiplication by 1/S).
  2. found_inf = any non-finite g over all tensors. If so the step is skipped: opt.step() is not
     called, nothing changes, the step does not count (bias correction continues from the last
     real step).
  3. norm = sqrt(sum over all tensors and elements of float64(g)^2), in float64;
     grad_norm = float32(norm).
  4. If max_grad_norm > 0: coef = float32(min(max_grad_norm / (norm + 1e-6), 1)) (the division in
     float64), g = g * coef in fp32.
  5. One step of torch.optim.Adam / AdamW / RMSprop (foreach=False) on fp32 tensors: the param is
     the fp32 master (master weights) or the exact upcast of the stored 16-bit param; the states
     are the exact upcasts of the stored states.
  6. Store: master = the fp32 result; param = result.to(dtype); each state = .to(state_dtype), all
     nearest-even (fp32 stays fp32). The next step starts from the stored values: the optimizer's
     fp32 param (without master weights) and states are overwritten in place with the upcasts of
     the rounded ones; torch's step counter advances normally.
  master_remainder needs no data of its own (it must equal the fp32-master mode) and stochastic
  rounding cannot be made by torch.

golden_mixed.bin: every variant (Adam, AdamW wd 0.1, AMSGrad, maximize, Adam L2 wd 0.1; RMSprop,
momentum 0.9, centered, centered + momentum 0.5, wd 0.05) in every mode (params fp16/bf16 x states
fp32/bf16 x master off/on), 20 steps, tensors of 1, 5, 17 and 1001 elements (64 instead of 1001
outside plain Adam, AdamW, plain RMSprop and the bf16/bf16-state/master mode), params
sign*10^U(-3,1), grads sign*10^U(-4,1); plus fp32 params with bf16 states for Adam, AdamW and
RMSprop. No step options (the replayer passes opts = NULL).
golden_amp.bin: AMP and clipping over 2-4 fp32 tensors of 3..1001 elements, 12 steps: fixed,
dynamic (GradScaler-like), absent and non-power-of-two scales, injected inf/NaN (including the
first two steps), scaled grads that overflow by themselves, clipping active, inactive and toggling,
clipping with no output asked for, one step where division and multiplication by 1/S disagree on
found_inf; and three cases that mix fp16/bf16 params with AMP.
"""
import argparse
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
    opt.state[p]["step"] = torch.tensor(float(first_step - 1))  # float32, as torch 1.13 keeps it
    slots = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq" if cfg["amsgrad"] else None]
    out = run_steps(opt, p, slots, state0, grads)
    assert float(opt.state[p]["step"]) == first_step - 1 + len(grads)
    return out


def run_rmsprop(cfg, param0, state0, grads):
    p = torch.nn.Parameter(torch.from_numpy(param0.copy()))
    opt = torch.optim.RMSprop([p], lr=cfg["lr"], alpha=cfg["alpha"], eps=cfg["eps"],
                              weight_decay=cfg["wd"], momentum=cfg["momentum"],
                              centered=cfg["centered"], maximize=cfg["maximize"], foreach=False)
    opt.state[p]["step"] = 0
    slots = ["square_avg", "momentum_buffer" if cfg["momentum"] > 0 else None,
             "grad_avg" if cfg["centered"] else None]
    return run_steps(opt, p, slots, state0, grads)


def run_steps(opt, p, slots, state0, grads):
    """Sets the state of p in opt from state0 for the used slots (their torch names, None where
    unused), steps once per grad and returns the param and the three slots (zeros where unused)."""
    st = opt.state[p]
    for name, s0 in zip(slots, state0):
        if name:
            st[name] = torch.from_numpy(s0.copy())
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    out = [st[name].numpy() if name else zeros(p.numel()) for name in slots]
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


def sized_cases(opt, variants, big, seed):
    """25 steps of each (name, cfg) variant at n = 1, 3, 5, 17, 1001, and 4097 for the names in
    big; the seeds count up from seed + 1."""
    cases = []
    for vname, cfg in variants:
        for n in [1, 3, 5, 17, 1001] + ([4097] if vname in big else []):
            seed += 1
            cases.append(make_case("%s_n%d" % (vname, n), opt, cfg, n, 25, seed))
    return cases


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
    cases = sized_cases(ADAM, variants, big, 1000)
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
    cases = sized_cases(RMSPROP, variants, big, 5000)
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


def write(file_name, cases, out_dir=None):
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    data = bytearray(MAGIC) + struct.pack("<II", VERSION, len(cases))
    for _, blob in cases:
        data += blob
    path = os.path.join(out_dir or OUT_DIR, file_name)
    with open(path, "wb") as f:
        f.write(data)
    print("%s: %d cases, %d bytes" % (os.path.relpath(path), len(cases), len(data)))


# =============================================================================================
# Format 2: multi-tensor cases with storage types, master weights and step options
# (tests/data/golden_mixed.bin, tests/data/golden_amp.bin; read by tests/golden_ext.c)
# =============================================================================================
VERSION_EXT = 2
DT_F32, DT_F16, DT_BF16 = 0, 1, 2  # fopt_dtype
TORCH_DT = {DT_F32: torch.float32, DT_F16: torch.float16, DT_BF16: torch.bfloat16}
DT_NAME = {DT_F32: "f32", DT_F16: "f16", DT_BF16: "bf16"}
S_SCALE, S_CHECK_INF, S_WANT_NORM = 1, 2, 4  # per-step flags
ADAM_SLOTS = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
RMSPROP_SLOTS = ["square_avg", "momentum_buffer", "grad_avg"]


def used_slots(opt, cfg):
    if opt == ADAM:
        return [0, 1] + ([2] if cfg["amsgrad"] else [])
    return [0] + ([1] if cfg["momentum"] > 0 else []) + ([2] if cfg["centered"] else [])


def tensor_bytes(t):
    """A 1-D CPU tensor in its own storage type as little-endian bytes (fp16/bf16: raw bits)."""
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    assert t.dtype in (torch.float16, torch.bfloat16)
    return t.view(torch.int16).numpy().astype("<i2").tobytes()


def make_optimizer(opt, cfg, params):
    if opt == ADAM:
        kw = dict(lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                  weight_decay=cfg["wd"], amsgrad=cfg["amsgrad"], maximize=cfg["maximize"],
                  foreach=False)
        return (torch.optim.AdamW if cfg["decoupled"] else torch.optim.Adam)(params, **kw)
    return torch.optim.RMSprop(params, lr=cfg["lr"], alpha=cfg["alpha"], eps=cfg["eps"],
                               weight_decay=cfg["wd"], momentum=cfg["momentum"],
                               centered=cfg["centered"], maximize=cfg["maximize"], foreach=False)


def run_ext(opt, cfg, dtype, state_dtype, master, params0, steps):
    """Replays one format-2 case through torch (see the top of this file for the semantics).

    params0: tensors in TORCH_DT[dtype]. steps: dicts with flags, scale (float32-representable),
    max_norm and grads (the stored scaled grads, tensors in TORCH_DT[dtype]); found_inf and
    grad_norm are filled in. Returns (param, master or None, {slot: state}) after the last step,
    in their storage types."""
    tdt, sdt = TORCH_DT[dtype], TORCH_DT[state_dtype]
    assert all(p.dtype == tdt for p in params0)
    mixed = dtype != DT_F32
    assert not master or mixed
    # fp32 master = exact upcast of param0 (clone: .float() of an fp32 tensor is that tensor)
    p32 = [torch.nn.Parameter(p.float().clone()) for p in params0]
    o = make_optimizer(opt, cfg, p32)
    names = ADAM_SLOTS if opt == ADAM else RMSPROP_SLOTS
    slots = used_slots(opt, cfg)
    stored = [p.clone() for p in params0]
    taken = 0
    for rec in steps:
        scale = np.float32(rec["scale"])
        assert float(scale) == rec["scale"] and scale > 0
        assert (rec["flags"] & S_SCALE) or scale == 1.0
        # unscale: a true fp32 division (numpy: IEEE single precision, elementwise)
        g = [gs.float().numpy() / scale for gs in rec["grads"]]
        found = any(not np.isfinite(x).all() for x in g)
        with np.errstate(over="ignore", invalid="ignore"):
            norm = float(torch.sqrt(sum((torch.from_numpy(x).double() ** 2).sum() for x in g)))
        rec["found_inf"] = int(found)
        rec["grad_norm"] = float(np.float32(norm))
        if found:
            assert rec["flags"] & S_CHECK_INF, "non-finite grads need the found_inf check"
            continue  # the skipped step: nothing changes, the step does not count
        if rec["max_norm"] > 0:
            coef = np.float32(min(rec["max_norm"] / (norm + 1e-6), 1.0))
            g = [x * coef for x in g]  # float32 * float32
            assert all(x.dtype == np.float32 for x in g)
        for p, x in zip(p32, g):
            p.grad = torch.from_numpy(x.copy())
        o.step()
        taken += 1
        with torch.no_grad():
            for i, p in enumerate(p32):
                if mixed:
                    stored[i] = p.detach().to(tdt)  # nearest-even
                    if not master:
                        p.copy_(stored[i].float())  # the next step starts from the rounding
                else:
                    stored[i] = p.detach().clone()
                st = o.state[p]
                for k in slots:
                    st[names[k]].copy_(st[names[k]].to(sdt).float())  # round the state in place
    if opt == ADAM and taken:
        assert all(float(o.state[p]["step"]) == taken for p in p32)
    out_states = []
    for p in p32:
        st = o.state[p]
        out_states.append({k: (st[names[k]].to(sdt).clone() if taken else
                               torch.zeros(p.numel(), dtype=sdt)) for k in slots})
    masters = [p.detach().clone() for p in p32] if master else None
    return stored, masters, out_states


def scaled_grads(rng, sizes, scale, dtype, lo=-4.0, hi=1.0):
    """True grads sign*10^U(lo, hi) (a few exact zeros in tensors of >= 8 elements), times the
    loss scale in fp32, stored in dtype (nearest-even; fp16 overflows to inf like a real scaled
    backward pass would)."""
    out = []
    for n in sizes:
        g = magnitudes(rng, n, lo, hi, zero_frac=1.0 / 32 if n >= 8 else 0.0)
        if not g.any():
            g[0] = np.float32(0.5)
        with np.errstate(over="ignore"):
            s = g * np.float32(scale)
        out.append(torch.from_numpy(s).to(TORCH_DT[dtype]))
    return out


def inject(rng, grads, what, count=1):
    """Puts `count` non-finite values (what: 'inf', '-inf', 'nan') into random tensors/places."""
    v = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}[what]
    for _ in range(count):
        t = int(rng.integers(0, len(grads)))
        grads[t][int(rng.integers(0, grads[t].numel()))] = v


def make_case_ext(name, opt, cfg, dtype, state_dtype, master, sizes, seed, plan):
    """plan(rng, k) -> dict(flags, scale, max_norm, grads) for step k (0-based)."""
    assert len(name) < 64
    rng = np.random.default_rng(seed)
    params0 = [torch.from_numpy((magnitudes(rng, n, -3.0, 1.0, zero_frac=0.0)
                                 if dtype != DT_F32 else params_uniform(rng, n)))
               .to(TORCH_DT[dtype]) for n in sizes]
    steps = [plan(rng, k) for k in range(plan.steps)]
    param, masters, states = run_ext(opt, cfg, dtype, state_dtype, master, params0, steps)

    outs = [("param", p) for p in param] + ([("master", m) for m in masters] if master else [])
    outs += [("state%d" % k, s) for st in states for k, s in st.items()]
    for what, t in outs:
        if not torch.isfinite(t).all():
            sys.exit("case %s: PyTorch produced inf/NaN in %s; change the case" % (name, what))

    if opt == ADAM:
        flags = ((F_DECOUPLED if cfg["decoupled"] else 0) | (F_AMSGRAD if cfg["amsgrad"] else 0)
                 | (F_MAXIMIZE if cfg["maximize"] else 0))
        scal = (cfg["lr"], cfg["beta1"], cfg["beta2"], cfg["eps"], cfg["wd"], 0.0)
    else:
        flags = ((F_MAXIMIZE if cfg["maximize"] else 0) | (F_CENTERED if cfg["centered"] else 0))
        scal = (cfg["lr"], cfg["alpha"], 0.0, cfg["eps"], cfg["wd"], cfg["momentum"])

    blob = bytearray()
    blob += struct.pack("<64sII6dIIIIII", name.encode(), opt, flags, *scal, dtype, state_dtype,
                        int(master), len(sizes), len(steps), 0)
    blob += struct.pack("<%dQ" % len(sizes), *sizes)
    for p in params0:
        blob += tensor_bytes(p)
    for rec in steps:
        blob += struct.pack("<Ifdif", rec["flags"], rec["scale"], rec["max_norm"],
                            rec["found_inf"], rec["grad_norm"])
        for g, n in zip(rec["grads"], sizes):
            assert g.dtype == TORCH_DT[dtype] and g.shape == (n,)
            blob += tensor_bytes(g)
    for i in range(len(sizes)):
        blob += tensor_bytes(param[i])
        if master:
            blob += tensor_bytes(masters[i])
        for k in used_slots(opt, cfg):
            assert states[i][k].dtype == TORCH_DT[state_dtype]
            blob += tensor_bytes(states[i][k])
    skipped = sum(r["found_inf"] for r in steps)
    return name, blob, skipped


class Plan:
    """A per-step schedule: scale(k) (None: no grad_scale), max_norm, which checks are asked, and
    non-finite injections {step: [(what, count), ...]}."""

    def __init__(self, steps, sizes, dtype, scale=None, max_norm=0.0, check_inf=False,
                 want_norm=False, inject_at=None, lo=-4.0, hi=1.0, edits=None):
        self.steps, self.sizes, self.dtype = steps, sizes, dtype
        self.edits = edits or {}
        self.scale, self.max_norm = scale, max_norm
        self.check_inf, self.want_norm = check_inf, want_norm
        self.inject_at, self.lo, self.hi = inject_at or {}, lo, hi

    def __call__(self, rng, k):
        s = self.scale(k) if callable(self.scale) else self.scale
        grads = scaled_grads(rng, self.sizes, 1.0 if s is None else s, self.dtype, self.lo, self.hi)
        for what, count in self.inject_at.get(k, []):
            inject(rng, grads, what, count)
        if k in self.edits:
            self.edits[k](grads)
        mn = self.max_norm(k) if callable(self.max_norm) else self.max_norm
        flags = ((S_SCALE if s is not None else 0) | (S_CHECK_INF if self.check_inf else 0)
                 | (S_WANT_NORM if self.want_norm else 0))
        return dict(flags=flags, scale=1.0 if s is None else float(np.float32(s)),
                    max_norm=float(mn), grads=grads)


def mixed_variants():
    return [
        ("adam", ADAM, adam_cfg(lr=3e-3)),
        ("adamw_wd0.1", ADAM, adam_cfg(lr=1e-2, wd=0.1, decoupled=True)),
        ("adam_amsgrad", ADAM, adam_cfg(lr=3e-3, amsgrad=True)),
        ("adam_maximize", ADAM, adam_cfg(lr=3e-3, maximize=True)),
        ("adam_l2_wd0.1", ADAM, adam_cfg(lr=3e-3, wd=0.1)),
        ("rmsprop", RMSPROP, rmsprop_cfg()),
        ("rmsprop_momentum0.9", RMSPROP, rmsprop_cfg(lr=1e-3, momentum=0.9)),
        ("rmsprop_centered", RMSPROP, rmsprop_cfg(lr=1e-3, centered=True)),
        ("rmsprop_centered_momentum0.5", RMSPROP, rmsprop_cfg(lr=1e-3, centered=True,
                                                              momentum=0.5)),
        ("rmsprop_wd0.05", RMSPROP, rmsprop_cfg(wd=0.05)),
    ]


def mixed_cases():
    """Every variant in every mode (param fp16/bf16 x states fp32/bf16 x master off/on), plus
    fp32 params with bf16 states for three variants. No step options (the replayer passes NULL)."""
    primary = {"adam", "adamw_wd0.1", "rmsprop"}
    cases = []
    seed = 10000
    modes = [(d, s, m) for d in (DT_F16, DT_BF16) for s in (DT_F32, DT_BF16) for m in (0, 1)]
    for vname, opt, cfg in mixed_variants():
        for dtype, sdt, master in modes:
            seed += 1
            full = vname in primary or (dtype, sdt, master) == (DT_BF16, DT_BF16, 1)
            sizes = [1, 5, 17, 1001] if full else [1, 5, 17, 64]
            name = "%s_p%s_s%s_%s" % (vname, DT_NAME[dtype], DT_NAME[sdt],
                                      "master" if master else "nomaster")
            cases.append(make_case_ext(name, opt, cfg, dtype, sdt, master, sizes, seed,
                                       Plan(20, sizes, dtype)))
    for vname, opt, cfg in mixed_variants():
        if vname in primary:
            seed += 1
            sizes = [1, 5, 17, 1001]
            cases.append(make_case_ext("%s_pf32_sbf16" % vname, opt, cfg, DT_F32, DT_BF16, 0,
                                       sizes, seed, Plan(20, sizes, DT_F32)))
    return cases


def amp_cases():
    """AMP loss scaling, the inf/NaN check and global-norm clipping over several tensors."""
    cases = []
    seed = 20000

    def add(name, opt, cfg, sizes, plan, dtype=DT_F32, sdt=DT_F32, master=0):
        nonlocal seed
        seed += 1
        c = make_case_ext(name, opt, cfg, dtype, sdt, master, sizes, seed, plan)
        print("  %-44s skipped steps %d of %d" % (name, c[2], plan.steps))
        cases.append(c)

    S3 = [3, 64, 1001]

    def pow2(e):
        return float(2.0 ** e)

    # GradScaler-like dynamic scale: halve after a skipped step, double every 4 clean steps
    def dynamic(start, bad_steps, every=4):
        sched, s, clean = [], start, 0
        for k in range(12):
            sched.append(s)
            if k in bad_steps:
                s, clean = s / 2, 0
            else:
                clean += 1
                if clean == every:
                    s, clean = s * 2, 0
        return lambda k: sched[k]

    add("adam_static_scale_inf_nan_noclip", ADAM, adam_cfg(), S3,
        Plan(12, S3, DT_F32, scale=pow2(16), check_inf=True, want_norm=True,
             inject_at={3: [("inf", 1)], 7: [("nan", 3)]}))
    add("adam_dynamic_scale_clip_active", ADAM, adam_cfg(lr=1e-2), S3,
        Plan(12, S3, DT_F32, scale=dynamic(pow2(16), {2, 8}), max_norm=1.0, check_inf=True,
             want_norm=True, inject_at={2: [("-inf", 1)], 8: [("inf", 2), ("nan", 1)]}))
    add("adamw_scale1024_clip_active", ADAM, adam_cfg(lr=1e-2, wd=0.05, decoupled=True),
        [3, 64, 1001, 5],
        Plan(12, [3, 64, 1001, 5], DT_F32, scale=pow2(10), max_norm=0.5, check_inf=True,
             want_norm=True, inject_at={5: [("nan", 1)]}))
    add("adamw_noscale_clip_inactive", ADAM, adam_cfg(lr=3e-3, wd=0.01, decoupled=True), S3,
        Plan(12, S3, DT_F32, scale=None, max_norm=1e4, check_inf=True, want_norm=True))
    add("adam_amsgrad_scale_clip_first_steps_skipped", ADAM, adam_cfg(amsgrad=True), [64, 3],
        Plan(12, [64, 3], DT_F32, scale=pow2(12), max_norm=2.0, check_inf=True, want_norm=True,
             inject_at={0: [("inf", 1)], 1: [("nan", 1)], 6: [("inf", 5)]}))
    # a scale that is not a power of two: division and multiplication by 1/S round differently
    add("adam_l2_scale3_clip", ADAM, adam_cfg(lr=3e-3, wd=0.1), S3,
        Plan(12, S3, DT_F32, scale=3.0, max_norm=5.0, check_inf=True, want_norm=True,
             inject_at={9: [("inf", 1)]}))
    add("adam_maximize_scale1000_noclip", ADAM, adam_cfg(maximize=True), [1001, 64],
        Plan(12, [1001, 64], DT_F32, scale=1000.0, check_inf=True, want_norm=True))
    # huge scales overflow the scaled fp32 grads by themselves (|g| > 8 at 2^125)
    add("adam_scale_overflow_backoff", ADAM, adam_cfg(lr=1e-2), S3,
        Plan(12, S3, DT_F32, scale=lambda k: pow2(125) if k < 3 else pow2(100), max_norm=0.0,
             check_inf=True, want_norm=True))
    # Division, not multiplication by 1/S, decides found_inf here: with S = 0.93158948 (bits
    # 0x3f6e7ca6) and a scaled grad of 0x7f6e7ca5 (3.17e38), g/S rounds to FLT_MAX (finite) but
    # g * float(1/S) overflows to inf. The step is taken: the norm is ~FLT_MAX, the clip
    # coefficient 1/FLT_MAX (a subnormal float) brings that element back to ~1 and every other
    # grad to ~1e-39.
    edge_scale = float(np.uint32(1064205478).view(np.float32))
    edge_grad = np.uint32(0x7F6E7CA5).view(np.float32)
    with np.errstate(over="ignore"):
        assert np.isfinite(edge_grad / np.float32(edge_scale))
        assert not np.isfinite(edge_grad * (np.float32(1) / np.float32(edge_scale)))

    def put_edge(grads):
        grads[1][7] = float(edge_grad)

    add("adam_scale_below1_division_edge_clip", ADAM, adam_cfg(lr=1e-2), S3,
        Plan(12, S3, DT_F32, scale=lambda k: edge_scale if k == 4 else pow2(10), max_norm=1.0,
             check_inf=True, want_norm=True, edits={4: put_edge}, inject_at={8: [("inf", 1)]}))
    # clipping without grad_norm or found_inf asked: the norm is needed anyway
    add("rmsprop_clip_active_no_outputs", RMSPROP, rmsprop_cfg(momentum=0.9), S3,
        Plan(12, S3, DT_F32, scale=None, max_norm=1.0))
    add("rmsprop_momentum_scale_clip", RMSPROP, rmsprop_cfg(lr=3e-3, momentum=0.5, wd=0.01),
        S3, Plan(12, S3, DT_F32, scale=pow2(14), max_norm=3.0, check_inf=True, want_norm=True,
                 inject_at={4: [("inf", 1)]}))
    add("rmsprop_centered_scale_inf_noclip", RMSPROP, rmsprop_cfg(lr=1e-3, centered=True), S3,
        Plan(12, S3, DT_F32, scale=pow2(8), check_inf=True, want_norm=True,
             inject_at={1: [("nan", 1)], 2: [("-inf", 1)], 10: [("inf", 1)]}))

    # clipping that turns on and off from step to step: max_norm around the typical norm
    rng = np.random.default_rng(29999)
    norms = [float(np.sqrt(sum((magnitudes(rng, n, -4.0, 1.0).astype(np.float64) ** 2).sum()
                               for n in S3))) for _ in range(64)]
    med = float(np.float32(np.median(norms)))
    add("rmsprop_centered_momentum_clip_toggles", RMSPROP,
        rmsprop_cfg(lr=1e-3, centered=True, momentum=0.9), S3,
        Plan(12, S3, DT_F32, scale=pow2(4), max_norm=med, check_inf=True, want_norm=True))
    add("adamw_clip_toggles_grad_norm_only", ADAM, adam_cfg(lr=1e-2, wd=0.1, decoupled=True), S3,
        Plan(12, S3, DT_F32, scale=pow2(4), max_norm=med, want_norm=True))

    # mixed precision with AMP: scaled grads stored in the 16-bit type (fp16 overflows to inf)
    add("mixed_adamw_bf16_master_bf16states_amp_clip", ADAM,
        adam_cfg(lr=1e-2, wd=0.1, decoupled=True), S3,
        Plan(12, S3, DT_BF16, scale=dynamic(pow2(12), {5}), max_norm=1.0, check_inf=True,
             want_norm=True, inject_at={5: [("inf", 1)]}), DT_BF16, DT_BF16, 1)
    add("mixed_adam_fp16_nomaster_amp_overflow", ADAM, adam_cfg(lr=3e-3), S3,
        Plan(12, S3, DT_F16, scale=lambda k: pow2(16) if k < 2 else pow2(12), max_norm=5.0,
             check_inf=True, want_norm=True), DT_F16, DT_F32, 0)
    add("mixed_rmsprop_fp16_master_amp_clip", RMSPROP, rmsprop_cfg(momentum=0.9), S3,
        Plan(12, S3, DT_F16, scale=pow2(10), max_norm=1.0, check_inf=True, want_norm=True,
             inject_at={7: [("nan", 1)]}), DT_F16, DT_BF16, 1)
    return cases


def write_ext(file_name, cases, out_dir):
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    data = bytearray(MAGIC) + struct.pack("<II", VERSION_EXT, len(cases))
    for _, blob, _ in cases:
        data += blob
    path = os.path.join(out_dir, file_name)
    with open(path, "wb") as f:
        f.write(data)
    print("%s: %d cases, %d bytes" % (os.path.relpath(path), len(cases), len(data)))


def main():
    ap = argparse.ArgumentParser(description="Writes fusedopt's PyTorch golden vectors.")
    ap.add_argument("what", nargs="?", default="v1", choices=["v1", "mixed", "amp", "ext", "all"],
                    help="v1 (default): golden_adam.bin and golden_rmsprop.bin (format 1); "
                         "mixed: golden_mixed.bin; amp: golden_amp.bin; ext: both format-2 "
                         "files; all: all four")
    ap.add_argument("--out-dir", default=OUT_DIR, help="where to write (default tests/data)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("torch", torch.__version__)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.what in ("v1", "all"):
        write("golden_adam.bin", adam_cases(), args.out_dir)
        write("golden_rmsprop.bin", rmsprop_cases(), args.out_dir)
    if args.what in ("mixed", "ext", "all"):
        write_ext("golden_mixed.bin", mixed_cases(), args.out_dir)
    if args.what in ("amp", "ext", "all"):
        write_ext("golden_amp.bin", amp_cases(), args.out_dir)


if __name__ == "__main__":
    main()
