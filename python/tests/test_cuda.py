"""CUDA parameters: the GPU optimizer object through fusedopt.torch on a real GPU (skipped
without one). Written for torch 2.x with CUDA (GradScaler as torch.amp.GradScaler, falling back
to torch.cuda.amp.GradScaler)."""
import copy

import pytest
import torch

import fusedopt.torch as fo
from helpers import batches, feed, group_layout, mlp, params_of, rel_err, step_twins, train, twins

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

NAMES = ["Adam", "AdamW", "RMSprop"]
VARIANT = {"Adam": dict(lr=1e-2, amsgrad=True), "AdamW": dict(lr=1e-2, weight_decay=0.1),
           "RMSprop": dict(lr=3e-3, momentum=0.5, centered=True)}


def cuda_batches(n):
    return [(x.cuda(), y.cuda()) for x, y in batches(n)]


def grad_scaler(**kw):
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        try:
            return torch.amp.GradScaler("cuda", **kw)
        except TypeError:
            pass
    return torch.cuda.amp.GradScaler(**kw)


@pytest.mark.parametrize("layout", ["one", "split"])
@pytest.mark.parametrize("name", NAMES)
def test_mlp_matches_torch_on_cuda(name, layout):
    data = cuda_batches(50)
    model = mlp().cuda()
    twin = copy.deepcopy(model)
    kw = VARIANT[name]
    f = getattr(fo, name)(group_layout(model, layout, kw["lr"]), **kw)
    t = getattr(torch.optim, name)(group_layout(twin, layout, kw["lr"]), **kw)
    lf = train(model, f, data)
    train(twin, t, data)
    assert sum(lf[-5:]) < 0.7 * sum(lf[:5])
    assert rel_err(params_of(model), params_of(twin)) < 1e-4
    assert len(f.state) == 0                  # the state lives in the GPU object
    sd = f.state_dict()["state"]
    assert all(v.is_cuda for st in sd.values() for k, v in st.items() if k != "step")


@pytest.mark.parametrize("name", NAMES)
def test_cuda_path_equals_cpu_path_bit_for_bit(name):
    """Same operations in the same order without FMA on both: identical bits."""
    gpu, cpu = twins([(300, 7), (7,), (5000,)], device="cuda")
    kw = VARIANT[name]
    f = getattr(fo, name)(gpu, **kw)
    c = getattr(fo, name)(cpu, **kw)
    step_twins(gpu, cpu, (f, c), range(10))
    for p, q in zip(gpu, cpu):
        assert torch.equal(p.detach().cpu(), q.detach())


def test_checkpoints_cross_over_on_cuda():
    data = cuda_batches(30)
    model = mlp().cuda()
    f = fo.AdamW(model.parameters(), lr=1e-2)
    train(model, f, data[:10])
    tm = copy.deepcopy(model)
    t = torch.optim.AdamW(tm.parameters(), lr=1e-2)
    t.load_state_dict(f.state_dict())
    fm = copy.deepcopy(tm)
    f2 = fo.AdamW(fm.parameters(), lr=1e-2)
    f2.load_state_dict(t.state_dict())
    train(model, f, data[10:])
    train(tm, t, data[10:])
    train(fm, f2, data[10:])
    assert rel_err(params_of(model), params_of(tm)) < 1e-4
    assert rel_err(params_of(fm), params_of(model)) < 1e-5
    # a CUDA checkpoint loads into CPU parameters (torch.load map_location style) and back
    cm = copy.deepcopy(model).cpu()
    fc = fo.AdamW(cm.parameters(), lr=1e-2)
    fc.load_state_dict(f.state_dict())
    assert all(not v.is_cuda for st in fc.state.values() for v in st.values())


def test_set_to_none_params_without_grads_and_schedulers():
    gpu, cpu = twins([(50,), (8, 8), (3,)], device="cuda")
    f = fo.Adam(gpu, lr=1e-2)
    c = fo.Adam(cpu, lr=1e-2)
    sf = torch.optim.lr_scheduler.StepLR(f, 2, 0.5)
    sc = torch.optim.lr_scheduler.StepLR(c, 2, 0.5)
    for s, which in enumerate([None, None, {0, 2}, {1}, None, None]):
        f.zero_grad(set_to_none=True)
        c.zero_grad(set_to_none=True)
        feed(gpu, cpu, s, which)
        f.step()
        c.step()
        sf.step()
        sc.step()
    for p, q in zip(gpu, cpu):
        assert torch.equal(p.detach().cpu(), q.detach())


def test_side_stream_and_deepcopy():
    gpu, cpu = twins([(1000,), (4, 4)], device="cuda")
    f = fo.RMSprop(gpu, lr=1e-2, momentum=0.9)
    c = fo.RMSprop(cpu, lr=1e-2, momentum=0.9)
    s = torch.cuda.Stream()
    for i in range(4):
        feed(gpu, cpu, i)
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            f.step()
        torch.cuda.current_stream().wait_stream(s)
        c.step()
    f2 = copy.deepcopy(f)
    p2 = f2.param_groups[0]["params"]
    feed(p2, cpu, 9)
    f2.step()
    c.step()
    for p, q in zip(p2, cpu):
        assert torch.equal(p.detach().cpu(), q.detach())


def test_non_contiguous_and_complex_on_cuda():
    torch.manual_seed(0)
    big = torch.randn(6, 10, device="cuda")
    big_c = big.cpu()
    gpu = [big[:, ::2].requires_grad_(), torch.nn.Parameter(torch.randn(4, 6, device="cuda").t()),
           torch.randn(3, 2, dtype=torch.complex64, device="cuda").requires_grad_()]
    cpu = [big_c[:, ::2].requires_grad_(), torch.nn.Parameter(gpu[1].detach().cpu().clone()),
           gpu[2].detach().cpu().requires_grad_()]
    f = fo.Adam(gpu, lr=1e-2, weight_decay=0.1)
    c = fo.Adam(cpu, lr=1e-2, weight_decay=0.1)
    step_twins(gpu, cpu, (f, c), range(4))
    assert torch.equal(big.cpu(), big_c)
    for p, q in zip(gpu[1:], cpu[1:]):
        assert torch.equal(p.detach().cpu(), q.detach())


@pytest.mark.parametrize("remainder", [False, True])
def test_bf16_master_weights_on_cuda(remainder):
    gpu, cpu = twins([(4096,), (33, 17)], dtype=torch.bfloat16, device="cuda")
    kw = dict(lr=1e-2, master_weights=True, master_remainder=remainder)
    f = fo.AdamW(gpu, **kw)
    c = fo.AdamW(cpu, **kw)
    step_twins(gpu, cpu, (f, c), range(6))
    for p, q in zip(gpu, cpu):
        assert torch.equal(p.detach().cpu(), q.detach())
    key = "master_remainder" if remainder else "master"
    sg = f.state_dict()["state"]
    for i, q in enumerate(cpu):
        assert torch.equal(sg[i][key].cpu(), c.state[q][key])


def test_bf16_mlp_against_torch_fused():
    """bf16 params: fusedopt with an fp32 master against torch.optim.Adam(fused=True), whose
    state is bf16: both learn; fusedopt's loss stays close to the fp32 run's."""
    data = cuda_batches(60)
    m32 = mlp().cuda()
    mf, mt = copy.deepcopy(m32).to(torch.bfloat16), copy.deepcopy(m32).to(torch.bfloat16)
    o32 = torch.optim.Adam(m32.parameters(), lr=1e-2)
    of = fo.Adam(mf.parameters(), lr=1e-2, master_weights=True)
    try:
        ot = torch.optim.Adam(mt.parameters(), lr=1e-2, fused=True)
    except (RuntimeError, TypeError):
        ot = torch.optim.Adam(mt.parameters(), lr=1e-2)
    l32 = train(m32, o32, data)
    lf = train(mf, of, data)
    lt = train(mt, ot, data)
    assert sum(lf[-5:]) < 0.6 * sum(lf[:5]) and sum(lt[-5:]) < 0.8 * sum(lt[:5])
    ef = rel_err([p.float() for p in mf.parameters()], list(m32.parameters()))
    et = rel_err([p.float() for p in mt.parameters()], list(m32.parameters()))
    print("bf16 vs fp32 run: fusedopt master weights rel err %.3g, loss %.3f; torch fused bf16 "
          "rel err %.3g, loss %.3f; fp32 loss %.3f" % (ef, sum(lf[-10:]) / 10, et,
                                                      sum(lt[-10:]) / 10, sum(l32[-10:]) / 10))
    assert abs(sum(lf[-10:]) - sum(l32[-10:])) / 10 < 0.15


@pytest.mark.parametrize("unscale", [False, True])
def test_grad_scaler_amp(unscale):
    """autocast + GradScaler: fusedopt receives grad_scale / found_inf (no separate unscale pass
    unless the user calls unscale_), skips steps with inf/NaN like torch, same scale updates."""
    data = cuda_batches(30)
    model = mlp().cuda()
    twin = copy.deepcopy(model)
    f = fo.Adam(model.parameters(), lr=1e-2)
    t = torch.optim.Adam(twin.parameters(), lr=1e-2)
    sf, st = grad_scaler(init_scale=2.0 ** 12), grad_scaler(init_scale=2.0 ** 12)
    for i, (xb, yb) in enumerate(data):
        for m, o, s in ((model, f, sf), (twin, t, st)):
            o.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = torch.nn.functional.cross_entropy(m(xb), yb)
            s.scale(loss).backward()
            if i in (7, 8):  # overflow: the step is skipped and the scale backs off
                next(m.parameters()).grad[0, 0] = float("inf")
            if unscale:
                s.unscale_(o)
                torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            s.step(o)
            s.update()
    assert sf.get_scale() == st.get_scale()
    assert rel_err(params_of(model), params_of(twin)) < 1e-4
    steps_f = float(f.state_dict()["state"][0]["step"])
    assert steps_f == float(t.state[next(twin.parameters())]["step"]) <= 28


def test_capturable_cuda_graph():
    """capturable=True: lr and step count on the device; step() captured in a CUDA graph and
    replayed gives the eager results."""
    gpu, cpu = twins([(1000,), (16, 16)], device="cuda")
    f = fo.Adam(gpu, lr=1e-2, capturable=True)
    c = fo.Adam(cpu, lr=1e-2)
    grads = [torch.zeros_like(p) for p in gpu]
    for p, g in zip(gpu, grads):
        p.grad = g
    # warm-up step (builds the object) outside the capture, on a side stream as torch asks
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    gen = torch.Generator().manual_seed(0)

    def new_grads():  # into the captured grads in place, and the CPU twin's
        vals = [torch.randn(q.shape, generator=gen) for q in cpu]
        for g, v in zip(grads, vals):
            g.copy_(v)
        for q, v in zip(cpu, vals):
            q.grad = v.clone()

    with torch.cuda.stream(s):
        new_grads()
        f.step()
    torch.cuda.current_stream().wait_stream(s)
    c.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        f.step()
    for i in range(3):
        new_grads()
        graph.replay()
        c.step()
    torch.cuda.synchronize()
    for p, q in zip(gpu, cpu):
        assert torch.equal(p.detach().cpu(), q.detach())
