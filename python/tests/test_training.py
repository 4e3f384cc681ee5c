"""A real network trained side by side with torch.optim: the same MLP, data and
hyper-parameters; parameters and losses agree within tolerance (fusedopt follows torch's
single-tensor formulas in fp32 without FMA; torch's CPU kernels contract some operations, so a
step differs by ~1e-6 relative, not bit for bit)."""
import pytest
import torch

import fusedopt.torch as fo
from helpers import batches, mlp, pair, params_of, rel_err, train

STEPS = 60

VARIANTS = {
    "Adam": [dict(), dict(amsgrad=True), dict(maximize=False, eps=1e-6, betas=(0.8, 0.99))],
    "AdamW": [dict(), dict(amsgrad=True)],
    "RMSprop": [dict(), dict(momentum=0.9), dict(centered=True), dict(centered=True, momentum=0.5)],
}
CASES = [(n, i) for n in VARIANTS for i in range(len(VARIANTS[n]))]


@pytest.mark.parametrize("layout", ["one", "split"])
@pytest.mark.parametrize("name,vi", CASES)
def test_mlp_matches_torch(name, vi, layout):
    kw = dict(VARIANTS[name][vi])
    kw.setdefault("lr", 3e-3 if name == "RMSprop" else 1e-2)
    data = batches(STEPS)
    model = mlp()
    f, t, twin = pair(model, name, layout, **kw)
    lf = train(model, f, data)
    lt = train(twin, t, data)
    first, last = sum(lf[:5]) / 5, sum(lf[-5:]) / 5
    assert last < 0.7 * first, "the network should learn (loss %.3f -> %.3f)" % (first, last)
    err = rel_err(params_of(model), params_of(twin))
    print("%s %s %s: rel err %.2e, loss %.3f -> %.3f" % (name, kw, layout, err, first, last))
    assert err < 5e-5, "parameters differ from torch.optim.%s by %.2e" % (name, err)
    assert max(abs(a - b) for a, b in zip(lf, lt)) < 1e-4 * max(lt)
    # per group, what fusedopt actually used
    for gf, gt in zip(f.param_groups, t.param_groups):
        assert gf["lr"] == gt["lr"] and gf["weight_decay"] == gt["weight_decay"]


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_one_step_same_gradients_tight(name):
    """Identical gradients: the only difference left is the arithmetic, a few ulp."""
    torch.manual_seed(3)
    ps = [torch.randn(33, 17), torch.randn(17), torch.randn(1000)]
    qs = [p.clone().requires_grad_() for p in ps]
    ps = [p.requires_grad_() for p in ps]
    kw = dict(lr=1e-2, weight_decay=0.1)
    f = getattr(fo, name)(ps, **kw)
    t = getattr(torch.optim, name)(qs, **kw)
    for _ in range(25):
        gs = [torch.randn_like(p) for p in ps]
        for p, q, g in zip(ps, qs, gs):
            p.grad, q.grad = g.clone(), g.clone()
        f.step()
        t.step()
    assert rel_err(ps, qs) < 1e-5
    sf, st = f.state_dict()["state"], t.state_dict()["state"]
    for i in range(len(ps)):
        assert set(sf[i]) == set(st[i])
        for k in st[i]:
            if k == "step":
                assert float(sf[i][k]) == float(st[i][k]) == 25
            else:
                assert rel_err([sf[i][k]], [st[i][k]]) < 1e-5, k


def test_closure_returns_loss():
    data = batches(5)
    model = mlp()
    f, t, twin = pair(model, "Adam")
    lf = train(model, f, data, closure=True)
    lt = train(twin, t, data, closure=True)
    assert rel_err(params_of(model), params_of(twin)) < 1e-5
    assert abs(lf[-1] - lt[-1]) < 1e-5
