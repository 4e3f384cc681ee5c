"""Shared test helpers: a small MLP on scikit-learn's handwritten digits (random data if
scikit-learn is missing), side-by-side training, comparisons."""
import copy

import torch

import fusedopt.torch as fo

_DATA = None


def digits():
    """(X, y): 1797 8x8 digit images as 64 floats in [0, 1], labels 0..9."""
    global _DATA
    if _DATA is None:
        try:
            from sklearn.datasets import load_digits
            d = load_digits()
            X = torch.tensor(d.data, dtype=torch.float32) / 16.0
            y = torch.tensor(d.target, dtype=torch.int64)
        except Exception:  # no scikit-learn: a fixed random problem of the same shape
            g = torch.Generator().manual_seed(0)
            X = torch.rand(1797, 64, generator=g)
            y = (X[:, :10].argmax(1) + (X[:, 10] > 0.5).long()) % 10
        _DATA = (X, y)
    return _DATA


def mlp(seed=0, hidden=32, dtype=torch.float32):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(),
                            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                            torch.nn.Linear(hidden, 10))
    return m.to(dtype)


def batches(n_steps, batch=64, seed=1):
    X, y = digits()
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_steps):
        idx = torch.randint(0, X.shape[0], (batch,), generator=g)
        out.append((X[idx], y[idx]))
    return out


def group_layout(model, layout, lr=None, **extra):
    """'one': one group; 'split': weights (the lr given, weight decay 0.05) and biases (twice
    that lr, no weight decay)."""
    if layout == "one":
        return [dict(params=list(model.parameters()), **extra)]
    lr = 1e-3 if lr is None else lr
    w = [p for n, p in model.named_parameters() if n.endswith("weight")]
    b = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return [dict(params=w, lr=lr, weight_decay=0.05, **extra),
            dict(params=b, lr=2 * lr, weight_decay=0.0, **extra)]


def loss_of(model, xb, yb):
    return torch.nn.functional.cross_entropy(model(xb.to(next(model.parameters()).dtype)), yb)


def train(model, opt, data, sched=None, sched_arg=None, closure=False):
    losses = []
    for xb, yb in data:
        if closure:
            def c():
                opt.zero_grad()
                loss = loss_of(model, xb, yb)
                loss.backward()
                return loss
            loss = opt.step(c)
        else:
            opt.zero_grad()
            loss = loss_of(model, xb, yb)
            loss.backward()
            opt.step()
        losses.append(float(loss))
        if sched is not None:
            if sched_arg is not None:
                sched.step(sched_arg(losses))
            else:
                sched.step()
    return losses


def rel_err(a, b):
    """max over tensors of max|a - b| / max|b| (0 for identical)."""
    worst = 0.0
    for x, y in zip(a, b):
        x, y = x.detach().double(), y.detach().double()
        den = max(float(y.abs().max()), 1e-30) if y.numel() else 1.0
        worst = max(worst, float((x - y).abs().max()) / den if x.numel() else 0.0)
    return worst


def params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def pair(model, name, layout="one", **kw):
    """(fusedopt optimizer, torch optimizer, torch's model copy)."""
    twin = copy.deepcopy(model)
    f = getattr(fo, name)(group_layout(model, layout, kw.get("lr")), **kw)
    t = getattr(torch.optim, name)(group_layout(twin, layout, kw.get("lr")), **kw)
    return f, t, twin


def twins(shapes, seed=0, dtype=torch.float32, device="cpu"):
    """Two lists of leaf tensors with the same random values (float32 draws rounded to dtype):
    the first on `device`, the second on the CPU."""
    torch.manual_seed(seed)
    a = [torch.randn(*s).to(dtype) for s in shapes]
    b = [x.clone().requires_grad_() for x in a]
    return [x.to(device).requires_grad_() for x in a], b


def feed(ps, qs, seed, which=None, scale=1.0):
    """The same random gradients for both lists (float32 draws of a seeded generator times scale,
    rounded to each tensor's dtype; ps's on their device, qs's on the CPU); the tensors whose
    index is not in `which` (when given) get None."""
    g = torch.Generator().manual_seed(seed)
    for i, (p, q) in enumerate(zip(ps, qs)):
        if which is not None and i not in which:
            p.grad = q.grad = None
            continue
        x = (torch.randn(q.shape, generator=g, dtype=torch.float32) * scale).to(q.dtype)
        p.grad, q.grad = x.to(p.device), x.clone()


def assert_same(ps, qs):
    """Bit for bit (qs on the CPU)."""
    for p, q in zip(ps, qs):
        assert torch.equal(p.detach().cpu(), q.detach())


def step_twins(ps, qs, opts, seeds, which=None, scale=1.0):
    """For each seed: feed() both lists, then step every optimizer of opts in turn."""
    for s in seeds:
        feed(ps, qs, s, which, scale)
        for o in opts:
            o.step()
