"""state_dict() / load_state_dict() in torch.optim's own format, both ways, deepcopy, pickle."""
import copy
import io
import pickle

import pytest
import torch

import fusedopt.torch as fo
from helpers import batches, group_layout, mlp, params_of, rel_err, train

KW = {"Adam": dict(lr=1e-2, amsgrad=True), "AdamW": dict(lr=1e-2, weight_decay=0.1),
      "RMSprop": dict(lr=3e-3, momentum=0.5, centered=True)}


def roundtrip(sd):
    """Through torch.save / torch.load, as a checkpoint file would go."""
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf)


@pytest.mark.parametrize("layout", ["one", "split"])
@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_fusedopt_checkpoint_into_torch(name, layout):
    data = batches(40)
    model = mlp()
    f = getattr(fo, name)(group_layout(model, layout, KW[name]["lr"]), **KW[name])
    train(model, f, data[:20])
    sd = roundtrip(f.state_dict())
    # the format torch.optim writes: keys, 'step' a float32 tensor
    ref_model = mlp()
    ref = getattr(torch.optim, name)(group_layout(ref_model, layout, KW[name]["lr"]), **KW[name])
    train(ref_model, ref, data[:1])
    ref_sd = ref.state_dict()
    assert set(sd["state"]) == set(ref_sd["state"])
    for i in sd["state"]:
        assert set(sd["state"][i]) == set(ref_sd["state"][i])
        assert torch.is_tensor(sd["state"][i]["step"]) and float(sd["state"][i]["step"]) == 20
    # torch continues from fusedopt's checkpoint; fusedopt continues too: same result
    twin = copy.deepcopy(model)
    t = getattr(torch.optim, name)(group_layout(twin, layout, KW[name]["lr"]), **KW[name])
    t.load_state_dict(sd)
    train(model, f, data[20:])
    train(twin, t, data[20:])
    assert rel_err(params_of(model), params_of(twin)) < 5e-5


@pytest.mark.parametrize("layout", ["one", "split"])
@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_torch_checkpoint_into_fusedopt(name, layout):
    data = batches(40)
    model = mlp()
    t = getattr(torch.optim, name)(group_layout(model, layout, KW[name]["lr"]), **KW[name])
    train(model, t, data[:20])
    sd = roundtrip(t.state_dict())
    twin = copy.deepcopy(model)
    f = getattr(fo, name)(group_layout(twin, layout, KW[name]["lr"]), **KW[name])
    f.load_state_dict(sd)
    train(model, t, data[20:])
    train(twin, f, data[20:])
    assert rel_err(params_of(twin), params_of(model)) < 5e-5
    # and back out again in the same format
    out = f.state_dict()
    for i in out["state"]:
        assert float(out["state"][i]["step"]) == 40


def test_hyper_parameters_come_from_the_checkpoint():
    model = mlp()
    t = torch.optim.AdamW(model.parameters(), lr=0.123, weight_decay=0.3, betas=(0.5, 0.6))
    f = fo.AdamW(mlp().parameters())
    f.load_state_dict(t.state_dict())
    g = f.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"]) == (0.123, 0.3, (0.5, 0.6))
    # fusedopt's own options get their defaults
    assert g["master_weights"] is False and g["state_dtype"] == torch.float32


def test_old_torch_checkpoint_with_number_steps():
    """torch < 1.12 (and RMSprop in 1.13) store 'step' as a plain number."""
    data = batches(10)
    model = mlp()
    t = torch.optim.Adam(model.parameters(), lr=1e-2)
    train(model, t, data[:5])
    sd = copy.deepcopy(t.state_dict())
    for st in sd["state"].values():
        st["step"] = int(st["step"].item())
    twin = copy.deepcopy(model)
    f = fo.Adam(twin.parameters(), lr=1e-2)
    f.load_state_dict(sd)
    for st in f.state.values():
        assert torch.is_tensor(st["step"]) and st["step"].dtype == torch.float32
    train(model, t, data[5:])
    train(twin, f, data[5:])
    assert rel_err(params_of(twin), params_of(model)) < 5e-5


def test_rmsprop_torch113_int_step():
    """torch 1.13's RMSprop keeps 'step' as an int: it loads; fusedopt's tensor step loads back
    into torch's RMSprop."""
    data = batches(10)
    model = mlp()
    t = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    train(model, t, data[:5])
    f = fo.RMSprop(copy.deepcopy(model).parameters(), lr=1e-3)
    f.load_state_dict(t.state_dict())
    t2 = torch.optim.RMSprop(mlp().parameters(), lr=1e-3)
    t2.load_state_dict(f.state_dict())


def test_load_keeps_the_inputs_untouched_and_unaliased():
    model = mlp()
    f = fo.Adam(model.parameters(), lr=1e-2)
    train(model, f, batches(3))
    sd = f.state_dict()
    before = copy.deepcopy(sd)
    g = fo.Adam(mlp().parameters(), lr=1e-2)
    g.load_state_dict(sd)
    for i in sd["state"]:
        for k, v in sd["state"][i].items():
            assert torch.equal(v, before["state"][i][k])
            assert v.data_ptr() != g.state[g.param_groups[0]["params"][i]][k].data_ptr()


def test_bad_state_dict_changes_nothing():
    model = mlp()
    f = fo.Adam(model.parameters(), lr=1e-2)
    train(model, f, batches(3))
    sd = f.state_dict()
    bad = {"state": {}, "param_groups": sd["param_groups"] + sd["param_groups"]}
    with pytest.raises(ValueError, match="different number of parameter groups"):
        f.load_state_dict(bad)
    assert float(f.state_dict()["state"][0]["step"]) == 3


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_deepcopy_and_pickle(name):
    data = batches(12)
    model = mlp()
    f = getattr(fo, name)(model.parameters(), **KW[name])
    train(model, f, data[:6])
    # deepcopy of model and optimizer together: the copy optimizes the copied model
    model2, f2 = copy.deepcopy((model, f))
    assert type(f2) is type(f)
    assert f2.param_groups[0]["params"][0] is list(model2.parameters())[0]
    # pickle (torch.save of the optimizer object itself)
    model3, f3 = pickle.loads(pickle.dumps((model, f)))
    train(model, f, data[6:])
    train(model2, f2, data[6:])
    train(model3, f3, data[6:])
    assert rel_err(params_of(model2), params_of(model)) == 0.0
    assert rel_err(params_of(model3), params_of(model)) == 0.0
    # the copies are independent
    assert f2.state[f2.param_groups[0]["params"][0]]["exp_avg" if name != "RMSprop" else "square_avg"] \
        .data_ptr() != f.state[f.param_groups[0]["params"][0]]["exp_avg" if name != "RMSprop" else "square_avg"].data_ptr()


def test_state_dict_contains_fusedopt_options_and_torch_keys():
    f = fo.Adam(mlp().parameters(), master_weights=True)
    g = f.state_dict()["param_groups"][0]
    for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach",
              "capturable", "differentiable", "fused", "master_weights", "state_dtype"):
        assert k in g
