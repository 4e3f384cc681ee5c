"""fp16/bf16 parameters on the CPU path: fp32 master weights (state['master']), 16-bit master
remainders, stochastic rounding, bf16 optimizer states."""
import copy

import pytest
import torch

import fusedopt.torch as fo
from helpers import batches, loss_of, mlp, rel_err

BF16 = torch.bfloat16


def bf16_twins(shapes, seed=0):
    torch.manual_seed(seed)
    lo = [torch.randn(*s).to(BF16).requires_grad_() for s in shapes]
    hi = [p.detach().float().requires_grad_() for p in lo]
    return lo, hi


def feed(lo, hi, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    for p, q in zip(lo, hi):
        x = (torch.randn(p.shape, generator=g) * scale).to(p.dtype)
        p.grad = x
        q.grad = x.float()


def decode_remainder(param, rem):
    """fp32 master = (bf16 param bits << 16) + sign-extended remainder (kernels/dtype.h)."""
    hi = param.view(torch.int16).to(torch.int32) & 0xFFFF
    bits = (hi << 16) + rem.to(torch.int32)
    return bits.view(torch.float32)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_bf16_master_weights_equal_the_fp32_path(name):
    lo, hi = bf16_twins([(31, 7), (7,)])
    kw = dict(lr=1e-2, weight_decay=0.05)
    f = getattr(fo, name)(lo, master_weights=True, **kw)
    r = getattr(fo, name)(hi, **kw)            # fp32 path on the upcast values
    t = getattr(torch.optim, name)([q.detach().clone().requires_grad_() for q in hi], **kw)
    for s in range(8):
        feed(lo, hi, s)
        for q, tq in zip(hi, t.param_groups[0]["params"]):
            tq.grad = q.grad.clone()
        f.step()
        r.step()
        t.step()
    for p, q in zip(lo, hi):
        m = f.state[p]["master"]
        assert m.dtype == torch.float32
        assert torch.equal(m, q.detach())                   # the master is the fp32 result, bit for bit
        assert torch.equal(p.detach(), q.detach().to(BF16))  # the param its nearest-even rounding
    assert rel_err([f.state[p]["master"] for p in lo], t.param_groups[0]["params"]) < 1e-5


def test_bf16_master_remainder_is_exact():
    lo, hi = bf16_twins([(300,), (17, 3)])
    rem_params = [p.detach().clone().requires_grad_() for p in lo]
    f = fo.Adam(rem_params, lr=1e-2, master_weights=True, master_remainder=True)
    r = fo.Adam(hi, lr=1e-2)
    for s in range(10):
        feed(rem_params, hi, s)
        f.step()
        r.step()
    for p, q in zip(rem_params, hi):
        rem = f.state[p]["master_remainder"]
        assert rem.dtype == torch.int16 and "master" not in f.state[p]
        assert torch.equal(decode_remainder(p.detach(), rem), q.detach())
        # the param is the master rounded to nearest (ties away from zero): within half an ulp
        ulp = q.detach().abs().to(BF16).float() * 2.0 ** -7
        assert bool(((p.detach().float() - q.detach()).abs() <= ulp / 2 + 1e-30).all())


def test_fp16_master_weights():
    torch.manual_seed(0)
    lo = [torch.randn(64).half().requires_grad_()]
    hi = [lo[0].detach().float().requires_grad_()]
    f = fo.AdamW(lo, lr=1e-3, master_weights=True)
    r = fo.AdamW(hi, lr=1e-3)
    for s in range(5):
        feed(lo, hi, s)
        f.step()
        r.step()
    assert torch.equal(f.state[lo[0]]["master"], hi[0].detach())
    assert torch.equal(lo[0].detach(), hi[0].detach().half())


def test_bf16_without_master_rounds_each_step():
    lo, hi = bf16_twins([(50,)])
    f = fo.Adam(lo, lr=1e-2)
    feed(lo, hi, 0)
    f.step()
    assert "master" not in f.state[lo[0]]
    assert f.state[lo[0]]["exp_avg"].dtype == torch.float32  # state_dtype default


def test_stochastic_rounding_makes_progress_where_nearest_stalls():
    """Updates of ~1e-3 on parameters near 1.0 (bf16 ulp 2^-7): round-to-nearest never moves
    them; stochastic rounding moves them by the right amount on average, reproducibly."""
    n, steps, lr = 20000, 10, 1e-3

    def run(**kw):
        p = torch.ones(n, dtype=BF16, requires_grad=True)
        o = fo.Adam([p], lr=lr, **kw)
        for _ in range(steps):
            p.grad = torch.ones(n, dtype=BF16)
            o.step()
        return p.detach().float()

    nearest = run()
    assert torch.equal(nearest, torch.ones(n))
    sr = run(stochastic_rounding=True, rounding_seed=7)
    assert abs(float(sr.mean()) - (1.0 - steps * lr)) < 1e-3
    assert torch.equal(sr, run(stochastic_rounding=True, rounding_seed=7))
    assert not torch.equal(sr, run(stochastic_rounding=True, rounding_seed=8))


def test_bf16_states():
    torch.manual_seed(0)
    ps = [torch.randn(200).requires_grad_()]
    qs = [ps[0].detach().clone().requires_grad_()]
    f = fo.Adam(ps, lr=1e-2, state_dtype=torch.bfloat16)
    t = torch.optim.Adam(qs, lr=1e-2)
    for s in range(10):
        g = torch.randn(200)
        ps[0].grad, qs[0].grad = g.clone(), g.clone()
        f.step()
        t.step()
    st = f.state[ps[0]]
    assert st["exp_avg"].dtype == BF16 and st["exp_avg_sq"].dtype == BF16
    assert rel_err(ps, qs) < 2e-2
    # a bf16-state checkpoint loads into torch.optim (cast to the fp32 params) and back
    t2 = torch.optim.Adam([qs[0].detach().clone().requires_grad_()], lr=1e-2)
    t2.load_state_dict(f.state_dict())
    f2 = fo.Adam([ps[0].detach().clone().requires_grad_()], lr=1e-2, state_dtype="bf16")
    f2.load_state_dict(t2.state_dict())
    assert f2.state[f2.param_groups[0]["params"][0]]["exp_avg"].dtype == BF16


@pytest.mark.parametrize("remainder", [False, True])
def test_bf16_master_checkpoint_roundtrip(remainder):
    """The master copy survives state_dict/load_state_dict in fp32 (torch.optim would cast every
    state tensor to the bf16 parameter dtype) and resumes bit for bit."""
    lo, hi = bf16_twins([(40,), (8, 5)])
    kw = dict(lr=1e-2, master_weights=True, master_remainder=remainder)
    f = fo.Adam(lo, **kw)
    for s in range(4):
        feed(lo, hi, s)
        f.step()
    sd = copy.deepcopy(f.state_dict())
    lo2 = [p.detach().clone().requires_grad_() for p in lo]
    f2 = fo.Adam(lo2, **kw)
    f2.load_state_dict(sd)
    key = "master_remainder" if remainder else "master"
    assert f2.state[lo2[0]][key].dtype == (torch.int16 if remainder else torch.float32)
    for s in range(4, 8):
        feed(lo, hi, s)
        feed(lo2, hi, s)
        f.step()
        f2.step()
    for p, q in zip(lo, lo2):
        assert torch.equal(p, q)
        assert torch.equal(f.state[p][key], f2.state[q][key])


def test_master_initialised_from_a_torch_checkpoint():
    """A torch.optim checkpoint of bf16 params has no master: it starts from the params."""
    lo, hi = bf16_twins([(20,)])
    t = torch.optim.Adam([p.detach().clone().requires_grad_() for p in lo], lr=1e-2)
    for s in range(2):
        feed(t.param_groups[0]["params"], hi, s)
        t.step()
    f = fo.Adam([q.detach().clone().requires_grad_() for q in t.param_groups[0]["params"]],
                lr=1e-2, master_weights=True)
    f.load_state_dict(t.state_dict())
    p = f.param_groups[0]["params"][0]
    assert f.state[p]["exp_avg"].dtype == torch.float32   # upcast from torch's bf16 state
    feed([p], hi, 5)
    f.step()
    assert f.state[p]["master"].dtype == torch.float32


@pytest.mark.parametrize("remainder", [False, True])
def test_bf16_mlp_with_master_weights(remainder):
    """A bf16 network trains with fp32 master weights and stays close to the fp32 network."""
    data = batches(60)
    m16 = mlp(dtype=BF16)
    m32 = mlp(dtype=torch.float32)
    f16 = fo.AdamW(m16.parameters(), lr=1e-2, master_weights=True, master_remainder=remainder)
    f32 = fo.AdamW(m32.parameters(), lr=1e-2)
    l16, l32 = [], []
    for xb, yb in data:
        for m, o, out in ((m16, f16, l16), (m32, f32, l32)):
            o.zero_grad()
            loss = loss_of(m, xb, yb)
            loss.backward()
            o.step()
            out.append(float(loss))
    assert sum(l16[-5:]) / 5 < 0.5 * sum(l16[:5]) / 5
    assert abs(sum(l16[-10:]) - sum(l32[-10:])) / 10 < 0.15
