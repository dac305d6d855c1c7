"""WeightNorm: PyTorch's torch.nn.utils.parametrizations.weight_norm as the oracle (names, shapes,
forward, backward, training with weight decay on v), finite differences in float64, clear errors."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.testing import gradcheck
from torch_steps import step_both

CONFIGS = [("linear", 0, (5, 3)), ("linear", 1, (5, 3)), ("linear", None, (5, 3)),
           ("conv", 0, (2, 2, 6, 6)), ("conv", None, (2, 2, 5, 5))]


def _layers(kind):
    import torch

    if kind == "linear":
        return gn.Linear(3, 4), torch.nn.Linear(3, 4)
    return gn.Conv2d(2, 5, 3, padding=1), torch.nn.Conv2d(2, 5, 3, padding=1)


def _copy_to_torch(ours, theirs):
    import torch

    with torch.no_grad():
        for name, value in theirs.state_dict().items():
            value.copy_(torch.from_numpy(np.array(backend.to_numpy(ours.state_dict()[name]))))


def rel(a, b):
    a, b = np.asarray(backend.to_numpy(a), np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.oracle
@pytest.mark.parametrize("kind,dim,shape", CONFIGS)
def test_names_shapes_forward_and_backward_match_torch(kind, dim, shape, rng):
    import torch
    from torch.nn.utils.parametrizations import weight_norm

    inner, tinner = _layers(kind)
    _copy_to_torch(inner, tinner)
    x = rng.standard_normal(shape).astype(np.float32)
    before = backend.to_numpy(inner(x)).copy()
    ours, theirs = gn.WeightNorm(inner, dim=dim), weight_norm(tinner, dim=dim)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert rel(ours(x), before) < 1e-6  # w = g·v/‖v‖ is the old weight, to rounding
    for k, v in theirs.state_dict().items():  # the initial g = ‖w‖ and v = w, as PyTorch's
        assert rel(ours.state_dict()[k], v.numpy()) < 1e-6, k
    new = {k: np.asarray(rng.standard_normal(v.shape) * (3 if k.endswith("0") else 1), np.float32)
           for k, v in theirs.state_dict().items()}
    ours.load_state_dict(new)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()})
    y = ours(x)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    dy = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    dx = ours.backward(dy)
    assert rel(y, yt.detach().numpy()) < 1e-5 and rel(dx, xt.grad.numpy()) < 1e-5
    tgrads = dict(theirs.named_parameters())
    for name, g in ours.named_gradients():
        assert rel(g, tgrads[name].grad.numpy()) < 1e-5, name


@pytest.mark.parametrize("kind,dim,shape", CONFIGS)
def test_gradcheck(kind, dim, shape, rng):
    inner = gn.Linear(3, 4) if kind == "linear" else gn.Conv2d(2, 3, 3, padding=1)
    layer = gn.WeightNorm(inner, dim=dim)
    report = gradcheck(layer, rng.standard_normal(shape), eps=1e-6, rtol=1e-5, atol=1e-7)
    assert set(report) == {"input", "bias", "parametrizations.weight.original0", "parametrizations.weight.original1"}


@pytest.mark.oracle
def test_trains_as_torch_with_decay_on_v_only(rng):
    import torch
    from torch.nn.utils.parametrizations import weight_norm

    ours = gn.Sequential(gn.WeightNorm(gn.Linear(6, 8)), gn.ReLU(), gn.WeightNorm(gn.Linear(8, 3), dim=None))
    theirs = torch.nn.Sequential(weight_norm(torch.nn.Linear(6, 8)), torch.nn.ReLU(),
                                 weight_norm(torch.nn.Linear(8, 3), dim=None))
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    decays = {full: decay for _, _, full, decay in ours.parameter_entries()}
    assert decays == {"0.bias": False, "0.parametrizations.weight.original0": False,
                      "0.parametrizations.weight.original1": True, "2.bias": False,
                      "2.parametrizations.weight.original0": False, "2.parametrizations.weight.original1": True}
    tparams = dict(theirs.named_parameters())
    groups = [{"params": [p for n, p in tparams.items() if decays[n]], "weight_decay": 0.1},
              {"params": [p for n, p in tparams.items() if not decays[n]], "weight_decay": 0.0}]
    opt, topt = gn.optim.AdamW(ours, lr=0.02, weight_decay=0.1), torch.optim.AdamW(groups, lr=0.02)
    loss, tloss = gn.losses.CrossEntropy(), torch.nn.CrossEntropyLoss()
    for _ in range(6):
        x = rng.standard_normal((16, 6)).astype(np.float32)
        y = rng.integers(0, 3, 16)
        step_both(ours, opt, loss, theirs, topt, tloss, x, y)
    for name, value in theirs.state_dict().items():
        assert rel(ours.state_dict()[name], value.numpy()) < 1e-5, name


def test_the_wrapped_layer_follows_moves_casts_and_the_arena(rng):
    layer = gn.WeightNorm(gn.Linear(4, 2)).to(dtype=np.float64)
    model = gn.Sequential(layer)
    model.flatten()
    x = rng.standard_normal((3, 4))
    y = layer(x)
    assert y.dtype == np.float64 and layer.layer.bias is layer.bias  # the arena's view, shared
    g, v = layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
    w = g * v / np.sqrt((v ** 2).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(y, x @ w.T + layer.bias, rtol=1e-12)
    assert "WeightNorm(Linear(4, 2), dim=0)" in repr(layer)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="WeightNorm: expected a gpunet layer"):
        gn.WeightNorm(np.ones(3))
    with pytest.raises(ValueError, match="has no parameter 'kernel'"):
        gn.WeightNorm(gn.Linear(3, 2), name="kernel")
    with pytest.raises(ValueError, match="infers its sizes from the first input"):
        gn.WeightNorm(gn.Linear(None, 2))
    for dim in (2, -1):
        with pytest.raises(ValueError, match=r"dim must be None or an axis 0..1 of the 2-D weight"):
            gn.WeightNorm(gn.Linear(3, 2), dim=dim)
    with pytest.raises(TypeError, match="has child layers"):
        gn.WeightNorm(gn.Sequential(gn.Linear(3, 2)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        gn.WeightNorm(gn.Linear(3, 2)).backward(np.ones((1, 2), np.float32))
