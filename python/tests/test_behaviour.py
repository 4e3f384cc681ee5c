"""Behaving like torch.optim where users notice: gradients set to None or reallocated, parameters
without gradients, groups added later, bad arguments (torch's own messages), sparse gradients,
non-contiguous and complex parameters, step options, errors from the library."""
import pytest
import torch

import fusedopt
import fusedopt.torch as fo
from fusedopt import FusedOptError
from helpers import batches, feed, mlp, pair, params_of, rel_err, step_twins, train, twins

NAMES = ["Adam", "AdamW", "RMSprop"]


@pytest.mark.parametrize("name", NAMES)
def test_set_to_none_and_reallocated_grads(name):
    data = batches(12)
    model = mlp()
    f, t, twin = pair(model, name, lr=1e-2)
    ptrs = set()
    for i, (xb, yb) in enumerate(data):
        for m, o in ((model, f), (twin, t)):
            o.zero_grad(set_to_none=(i % 2 == 0))
            torch.nn.functional.cross_entropy(m(xb), yb).backward()
            o.step()
        ptrs.add(list(model.parameters())[0].grad.data_ptr())
    assert rel_err(params_of(model), params_of(twin)) < 5e-5
    # replace every gradient by a new tensor (new address) between steps
    ps, qs = list(model.parameters()), list(twin.parameters())
    for s in range(3):
        feed(ps, qs, 100 + s)
        f.step()
        t.step()
    assert rel_err(ps, qs) < 5e-5


def test_zero_grad_default_is_set_to_none():
    model = mlp()
    f = fo.Adam(model.parameters())
    train(model, f, batches(1))
    f.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_params_without_grads_are_skipped(name):
    ps, qs = twins([(5, 3), (4,), (6,)])
    f = getattr(fo, name)(ps, lr=1e-2)
    t = getattr(torch.optim, name)(qs, lr=1e-2)
    plan = [None, {0, 1}, {0, 2}, {2}, None, {1}]
    for s, which in enumerate(plan):
        feed(ps, qs, s, which)
        f.step()
        t.step()
    assert rel_err(ps, qs) < 1e-5
    sf, st = f.state_dict()["state"], t.state_dict()["state"]
    for i in range(3):
        assert float(sf[i]["step"]) == float(st[i]["step"])
    assert [float(sf[i]["step"]) for i in range(3)] == [4, 4, 4]
    # a parameter that never had a gradient has no state, as in torch
    ps2, qs2 = twins([(3,), (3,)])
    f2 = getattr(fo, name)(ps2)
    feed(ps2, qs2, 0, {0})
    f2.step()
    assert set(f2.state_dict()["state"]) == {0}


@pytest.mark.parametrize("name", NAMES)
def test_add_param_group_later(name):
    ps, qs = twins([(5, 3), (4,), (7, 2)])
    f = getattr(fo, name)(ps[:2], lr=1e-2)
    t = getattr(torch.optim, name)(qs[:2], lr=1e-2)
    for s in range(3):
        feed(ps[:2], qs[:2], s)
        f.step()
        t.step()
    f.add_param_group({"params": [ps[2]], "lr": 3e-2, "weight_decay": 0.2})
    t.add_param_group({"params": [qs[2]], "lr": 3e-2, "weight_decay": 0.2})
    step_twins(ps, qs, (f, t), range(3, 7))
    assert rel_err(ps, qs) < 1e-5
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        f.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": -1})


def test_group_hyper_parameters_changed_in_place():
    ps, qs = twins([(5, 3), (4,)])
    f = fo.Adam(ps, lr=1e-2)
    t = torch.optim.Adam(qs, lr=1e-2)
    for s in range(6):
        if s == 3:
            for o in (f, t):
                o.param_groups[0].update(betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1, maximize=True)
        feed(ps, qs, s)
        f.step()
        t.step()
    assert rel_err(ps, qs) < 1e-5
    # torch.optim fails (KeyError) when amsgrad is switched on mid-run; fusedopt starts the max
    f.param_groups[0]["amsgrad"] = True
    feed(ps, qs, 99)
    f.step()
    assert "max_exp_avg_sq" in f.state[ps[0]]


def torch_error(cls, **kw):
    with pytest.raises(Exception) as e:
        cls([torch.zeros(2, requires_grad=True)], **kw)
    return type(e.value), str(e.value)


@pytest.mark.parametrize("name,kw", [
    ("Adam", dict(lr=-1.0)), ("Adam", dict(lr=float("nan"))), ("Adam", dict(eps=-1e-8)),
    ("Adam", dict(betas=(1.0, 0.999))), ("Adam", dict(betas=(0.9, -0.1))),
    ("Adam", dict(weight_decay=-0.1)), ("AdamW", dict(lr=-1.0)), ("AdamW", dict(betas=(0.9, 1.5))),
    ("AdamW", dict(weight_decay=-1e-2)), ("RMSprop", dict(lr=-0.5)), ("RMSprop", dict(eps=-1.0)),
    ("RMSprop", dict(momentum=-0.9)), ("RMSprop", dict(weight_decay=-1.0)),
    ("RMSprop", dict(alpha=-0.1)),
])
def test_bad_arguments_have_torchs_messages(name, kw):
    et, msg = torch_error(getattr(torch.optim, name), **kw)
    with pytest.raises(et) as e:
        getattr(fo, name)([torch.zeros(2, requires_grad=True)], **kw)
    assert str(e.value) == msg


def test_bad_fusedopt_options():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="master_remainder=True needs master_weights=True"):
        fo.Adam(p, master_remainder=True)
    with pytest.raises(ValueError, match="cannot be combined with master_weights"):
        fo.Adam(p, master_weights=True, stochastic_rounding=True)
    with pytest.raises(ValueError, match="Invalid state_dtype"):
        fo.Adam(p, state_dtype=torch.float16)
    with pytest.raises(ValueError, match="Invalid alpha value: 1.5"):
        fo.RMSprop(p, alpha=1.5)
    with pytest.raises(ValueError, match="differentiable"):
        fo.Adam(p, differentiable=True)
    with pytest.raises(TypeError, match="params argument given to the optimizer"):
        fo.Adam(torch.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        fo.Adam([])


@pytest.mark.parametrize("name", NAMES)
def test_sparse_gradients_rejected_as_torch_does(name):
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError) as te:
        getattr(torch.optim, name)(emb.parameters()).step()
    with pytest.raises(RuntimeError) as fe:
        getattr(fo, name)(emb.parameters()).step()
    assert str(fe.value) == str(te.value)


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_parameters(name):
    """A transposed parameter (dense, permuted) is stepped in place through its own memory; a
    strided slice (gaps) is stepped as a contiguous copy and copied back; both update the
    caller's storage as torch.optim does."""
    torch.manual_seed(0)
    base_f = torch.randn(6, 8)
    base_t = base_f.clone()
    pf = [torch.nn.Parameter(base_f.t()), torch.nn.Parameter(torch.randn(4, 6))]
    pt = [torch.nn.Parameter(base_t.t()), torch.nn.Parameter(pf[1].detach().clone())]
    big_f = torch.randn(5, 10)
    big_t = big_f.clone()
    sl_f = big_f[:, ::2]
    sl_t = big_t[:, ::2]
    sl_f.requires_grad_()
    sl_t.requires_grad_()
    ps, qs = pf + [sl_f], pt + [sl_t]
    assert not ps[0].is_contiguous() and not ps[2].is_contiguous()
    f = getattr(fo, name)(ps, lr=1e-2, weight_decay=0.1)
    t = getattr(torch.optim, name)(qs, lr=1e-2, weight_decay=0.1)
    for s in range(5):
        g = torch.Generator().manual_seed(s)
        for p, q in zip(ps, qs):
            x = torch.randn(p.shape, generator=g)
            if s % 2:  # contiguous grads for the transposed parameter too
                p.grad, q.grad = x.clone(), x.clone()
            else:
                p.grad = torch.empty_like(p).copy_(x)
                q.grad = torch.empty_like(q).copy_(x)
        f.step()
        t.step()
    assert rel_err(ps, qs) < 1e-5
    assert rel_err([big_f, base_f], [big_t, base_t]) < 1e-5  # the storage behind the views
    assert torch.equal(big_f[:, 1::2], big_t[:, 1::2])       # the gaps untouched
    # the state keeps the parameter's layout (dense) or is contiguous (staged)
    st = f.state[ps[0]]
    k = "exp_avg" if name != "RMSprop" else "square_avg"
    assert st[k].stride() == ps[0].stride()
    assert f.state[ps[2]][k].is_contiguous()


# (AMSGrad on complex parameters fails inside torch 1.13 itself: torch.maximum of complex.)
@pytest.mark.parametrize("name,kw", [("Adam", {}), ("AdamW", {}),
                                     ("RMSprop", dict(centered=True, momentum=0.9))])
def test_complex_parameters(name, kw):
    torch.manual_seed(0)
    ps = [torch.randn(4, 3, dtype=torch.complex64).requires_grad_(), torch.randn(5).requires_grad_()]
    qs = [p.detach().clone().requires_grad_() for p in ps]
    f = getattr(fo, name)(ps, lr=1e-2, weight_decay=0.1, **kw)
    t = getattr(torch.optim, name)(qs, lr=1e-2, weight_decay=0.1, **kw)
    for s in range(6):
        for p, q in zip(ps, qs):
            x = torch.randn(p.shape, dtype=p.dtype)
            p.grad, q.grad = x.clone(), x.clone()
        f.step()
        t.step()
    assert rel_err([torch.view_as_real(ps[0]), ps[1]], [torch.view_as_real(qs[0]), qs[1]]) < 1e-5
    sd = f.state_dict()["state"][0]
    assert all(v.dtype == torch.complex64 for k, v in sd.items() if k != "step")
    # complex checkpoints cross over too
    t2 = getattr(torch.optim, name)([q.detach().clone().requires_grad_() for q in qs], lr=1e-2,
                                    weight_decay=0.1, **kw)
    t2.load_state_dict(f.state_dict())


def test_unsupported_dtypes_and_mismatches_explained():
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    p.grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"dtype torch.float64; fusedopt steps float32, float16"):
        fo.Adam([p]).step()
    r = torch.zeros(3, dtype=torch.float16, requires_grad=True)
    r.grad = torch.ones(3, dtype=torch.float16)
    with pytest.raises(TypeError, match="stochastic_rounding is for bfloat16"):
        fo.Adam([r], stochastic_rounding=True).step()
    c = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    c.grad = torch.ones(3, dtype=torch.complex64)
    with pytest.raises(TypeError, match="complex parameters need state_dtype=torch.float32"):
        fo.Adam([c], state_dtype=torch.bfloat16).step()


def test_mixed_dtypes_in_one_group():
    """fp32 and bf16 parameters in one group: one call, each tensor in its own dtype."""
    torch.manual_seed(0)
    a = torch.randn(10).requires_grad_()
    b = torch.randn(10).to(torch.bfloat16).requires_grad_()
    f = fo.Adam([a, b], lr=1e-2)
    ref = fo.Adam([a.detach().clone().requires_grad_()], lr=1e-2)
    for s in range(3):
        a.grad = torch.randn(10)
        b.grad = torch.randn(10).to(torch.bfloat16)
        ref.param_groups[0]["params"][0].grad = a.grad.clone()
        f.step()
        ref.step()
    assert torch.equal(a, ref.param_groups[0]["params"][0])
    assert f.state[b]["exp_avg"].dtype == torch.float32


def test_library_errors_carry_fopt_last_error():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    f = fo.Adam([p], lr=float("inf"))
    with pytest.raises(FusedOptError) as e:
        f.step()
    assert "lr must be finite" in str(e.value)
    assert e.value.status_name == "FOPT_ERROR_INVALID_VALUE"
    assert e.value.call == "fopt_adam_step_cpu_multi"
    assert "param group 0" in str(e.value)
    assert torch.equal(p, torch.zeros(3)) and float(f.state[p]["step"]) == 0  # nothing changed


def test_grad_scale_and_found_inf_on_cpu():
    """The AMP contract (GradScaler sets these as attributes; keywords work too)."""
    ps, qs = twins([(5, 3), (4,)])
    f = fo.Adam(ps, lr=1e-2)
    t = torch.optim.Adam(qs, lr=1e-2)
    scale = torch.tensor([1024.0])
    for s in range(4):
        feed(ps, qs, s)
        for p in ps:
            p.grad.mul_(1024.0)
        if s == 2:  # an overflow: nothing changes, the step does not count
            before = [p.detach().clone() for p in ps]
            f.step(grad_scale=scale, found_inf=torch.tensor([1.0]))
            assert rel_err(ps, before) == 0.0
            assert float(f.state[ps[0]]["step"]) == 2
            continue
        f.grad_scale, f.found_inf = scale, torch.tensor([0.0])
        f.step()
        del f.grad_scale, f.found_inf
        t.step()
    assert rel_err(ps, qs) < 1e-5


def test_adam_decoupled_weight_decay_keyword():
    """torch 2.x: Adam(decoupled_weight_decay=True) is AdamW; the group key is honoured."""
    ps, qs = twins([(6, 2)])
    f = fo.Adam(ps, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True)
    t = torch.optim.AdamW(qs, lr=1e-2, weight_decay=0.1)
    step_twins(ps, qs, (f, t), range(3))
    assert rel_err(ps, qs) < 1e-5
    assert f.param_groups[0]["decoupled_weight_decay"] is True
    assert fo.Adam(ps).param_groups[0]["decoupled_weight_decay"] is False


class _StubScaler:
    """What torch 1.x's GradScaler hands a _step_supports_amp_scaling optimizer."""

    class _Stage:
        def __init__(self, name):
            self.name = name

    def __init__(self, opt, scale, inf, stage):
        self.scale = torch.tensor([scale])
        self.inf = torch.tensor([inf])
        self._per_optimizer_states = {id(opt): {"stage": self._Stage(stage),
                                                "found_inf_per_device": {}}}
        self.opt = opt

    def _check_inf_per_device(self, opt):
        d = {"cpu": self.inf}
        self._per_optimizer_states[id(opt)]["found_inf_per_device"] = d
        return d

    def _get_scale_async(self):
        return self.scale


def test_torch1_grad_scaler_keyword():
    ps, qs = twins([(5, 3)])
    f = fo.Adam(ps, lr=1e-2)
    t = torch.optim.Adam(qs, lr=1e-2)
    feed(ps, qs, 0)
    ps[0].grad.mul_(8.0)
    f.step(grad_scaler=_StubScaler(f, 8.0, 0.0, "READY"))
    t.step()
    assert rel_err(ps, qs) < 1e-5
    before = ps[0].detach().clone()
    feed(ps, qs, 1)
    f.step(grad_scaler=_StubScaler(f, 8.0, 1.0, "READY"))      # overflow: skipped
    assert torch.equal(ps[0], before) and float(f.state[ps[0]]["step"]) == 1
    s = _StubScaler(f, 8.0, 0.0, "UNSCALED")                     # unscale_() already ran
    s._check_inf_per_device(f)
    f.step(grad_scaler=s)
    t.step()
    assert rel_err(ps, qs) < 1e-5
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        f.step(bogus=1)


def test_maximize():
    ps, qs = twins([(5, 3)])
    f = fo.Adam(ps, lr=1e-2, maximize=True)
    t = torch.optim.Adam(qs, lr=1e-2, maximize=True)
    step_twins(ps, qs, (f, t), range(3))
    assert rel_err(ps, qs) < 1e-5


def test_empty_and_zero_size_parameters():
    ps, qs = twins([(0,), (3,), (0, 4)])
    f = fo.Adam(ps, lr=1e-2)
    t = torch.optim.Adam(qs, lr=1e-2)
    assert f.state_dict()["state"] == {}
    step_twins(ps, qs, (f, t), range(2))
    assert rel_err(ps, qs) < 1e-5
    assert float(f.state[ps[0]]["step"]) == 2


def test_repr_and_lib_path():
    f = fo.AdamW(mlp().parameters())
    assert "AdamW (" in repr(f) and "weight_decay: 0.01" in repr(f)
    assert fusedopt.lib_path().endswith(".so") or ".so." in fusedopt.lib_path()
    assert fusedopt.version().startswith("0.2")


def test_steps_at_different_counts_in_one_group():
    """A checkpoint where parameters of one group are at different steps (one was skipped)."""
    ps, qs = twins([(5,), (6,)])
    f = fo.Adam(ps, lr=1e-2)
    t = torch.optim.Adam(qs, lr=1e-2)
    for s, which in enumerate([None, {0}, {0}, None, None]):
        feed(ps, qs, s, which)
        f.step()
        t.step()
    assert rel_err(ps, qs) < 1e-5
    assert [float(f.state[p]["step"]) for p in ps] == [5, 3]
