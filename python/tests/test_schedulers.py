"""torch.optim.lr_scheduler works unchanged: the schedulers write group['lr'], fusedopt reads it
at every step."""
import pytest
from torch.optim import lr_scheduler as S

from helpers import batches, mlp, pair, params_of, rel_err, train


def make(kind, opt):
    if kind == "StepLR":
        return S.StepLR(opt, step_size=7, gamma=0.5), None
    if kind == "CosineAnnealingLR":
        return S.CosineAnnealingLR(opt, T_max=30, eta_min=1e-4), None
    if kind == "ReduceLROnPlateau":
        # the metric is the loss of the step; a short patience makes it fire in the test
        return S.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.5), lambda l: l[-1]
    if kind == "ChainedScheduler":
        return S.ChainedScheduler([S.ExponentialLR(opt, gamma=0.97),
                                   S.MultiStepLR(opt, milestones=[10, 20], gamma=0.3)]), None
    if kind == "SequentialLR":
        return S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.1, total_iters=8),
                                    S.CosineAnnealingLR(opt, T_max=25)], milestones=[8]), None
    if kind == "OneCycleLR":
        return S.OneCycleLR(opt, max_lr=2e-2, total_steps=40), None
    raise ValueError(kind)


KINDS = ["StepLR", "CosineAnnealingLR", "ReduceLROnPlateau", "ChainedScheduler", "SequentialLR",
         "OneCycleLR"]


@pytest.mark.filterwarnings("ignore:The epoch parameter")  # torch 1.13's SequentialLR
@pytest.mark.parametrize("layout", ["one", "split"])
@pytest.mark.parametrize("kind", KINDS)
def test_scheduler_matches_torch(kind, layout):
    data = batches(35)
    model = mlp()
    f, t, twin = pair(model, "AdamW", layout, lr=1e-2)
    sf, arg = make(kind, f)
    st, _ = make(kind, t)
    lrs_f, lrs_t = [], []

    def record(opt, out):
        out.append([g["lr"] for g in opt.param_groups])

    for xb, yb in data:
        for m, o, s, out in ((model, f, sf, lrs_f), (twin, t, st, lrs_t)):
            l = train(m, o, [(xb, yb)])
            s.step(l[-1]) if arg else s.step()
            record(o, out)
    assert lrs_f == lrs_t
    assert len(set(map(tuple, lrs_f))) > 2, "the schedule should have changed the lr"
    assert rel_err(params_of(model), params_of(twin)) < 5e-5


def test_scheduler_state_survives_checkpoint():
    data = batches(20)
    model = mlp()
    f, t, twin = pair(model, "Adam", "split", lr=1e-2)
    sf = S.CosineAnnealingLR(f, T_max=20)
    train(model, f, data[:10], sched=sf)
    ck = {"opt": f.state_dict(), "sched": sf.state_dict()}
    f2, _, _ = pair(model, "Adam", "split", lr=1e-2)
    sf2 = S.CosineAnnealingLR(f2, T_max=20)
    f2.load_state_dict(ck["opt"])
    sf2.load_state_dict(ck["sched"])
    assert [g["lr"] for g in f2.param_groups] == [g["lr"] for g in f.param_groups]
