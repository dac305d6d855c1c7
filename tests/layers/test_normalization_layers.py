"""BatchNorm1d / BatchNorm2d layers: PyTorch as the oracle (float32, relative error under 1e-5),
finite-difference gradients in float64, state-dict names, modes and clear errors."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.testing import gradcheck

RTOL = 1e-5  # ‖ours − torch‖ / ‖torch‖ in float32


def rel(a, b):
    a, b = np.asarray(backend.to_numpy(a), np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _pair(cls, shape, rng, **kw):
    import torch

    C = shape[1]
    ours = getattr(gn, cls)(C, **kw)
    theirs = getattr(torch.nn, cls)(C, **kw)
    if ours.affine:
        w = rng.uniform(0.5, 2.0, C).astype(np.float32)
        b = rng.standard_normal(C).astype(np.float32)
        ours.weight[...] = backend.to_device(w, ours.device)
        ours.bias[...] = backend.to_device(b, ours.device)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(w))
            theirs.bias.copy_(torch.from_numpy(b))
    return ours, theirs


# With two values per channel, x̂ = ±σ/√(σ² + ε) and dx nearly cancels unless ε is comparable to σ²
# (both libraries then return rounding noise), so that case takes eps = 1.
CASES = [("BatchNorm1d", (64, 33), 1e-5), ("BatchNorm1d", (2, 5), 1.0), ("BatchNorm1d", (8, 6, 7), 1e-5),
         ("BatchNorm2d", (4, 3, 5, 7), 1e-3), ("BatchNorm2d", (2, 1, 3, 3), 1e-5), ("BatchNorm2d", (16, 8, 4, 4), 1e-5)]


@pytest.mark.oracle
@pytest.mark.parametrize("cls,shape,eps", CASES)
@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
def test_matches_torch_train_eval_backward_and_running_stats(cls, shape, eps, momentum, rng, device):
    import torch

    ours, theirs = _pair(cls, shape, rng, momentum=momentum, eps=eps)
    for step in range(4):  # running statistics after several steps
        x = (rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-3, 3)).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        ours.train()
        theirs.train()
        y = ours(backend.to_device(x))
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = theirs(xt)
        yt.backward(torch.from_numpy(dy))
        dx = ours.backward(backend.to_device(dy))
        assert rel(y, yt.detach().numpy()) < RTOL, step
        assert rel(dx, xt.grad.numpy()) < RTOL, step
        # dγ = Σ dy·x̂ and dβ = Σ dy are sums whose terms cancel: float32 rounding is bounded
        # relative to Σ|terms| per channel, not to the sum itself (on an H100 an 18-term dβ of
        # 0.018 from O(1) terms differed from PyTorch by 2.3e-5 relative)
        axes = (0,) + tuple(range(2, len(shape)))
        x64 = x.astype(np.float64)
        xhat = (x64 - x64.mean(axes, keepdims=True)) / np.sqrt(x64.var(axes, keepdims=True) + eps)
        for name, terms in (("weight", dy * xhat), ("bias", dy.astype(np.float64))):
            diff = backend.to_numpy(ours._grads[name]).astype(np.float64) - getattr(theirs, name).grad.numpy()
            assert np.linalg.norm(diff) < RTOL * np.linalg.norm(np.abs(terms).sum(axes)), name
        theirs.zero_grad()
        # a running mean near zero is a sum that cancels too: bound it by the scale of the batch means' terms
        diff = backend.to_numpy(ours.running_mean).astype(np.float64) - theirs.running_mean.numpy()
        scale = max(np.linalg.norm(theirs.running_mean.numpy()), np.linalg.norm(np.abs(x64).mean(axes)))
        assert np.linalg.norm(diff) < RTOL * scale, "running_mean"
        assert rel(ours.running_var, theirs.running_var.numpy()) < RTOL
        assert int(backend.to_numpy(ours.num_batches_tracked)) == int(theirs.num_batches_tracked) == step + 1
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    assert rel(ours(backend.to_device(x)), yt.detach().numpy()) < RTOL
    assert rel(ours.backward(backend.to_device(dy)), xt.grad.numpy()) < RTOL
    xhat = (x.astype(np.float64) - theirs.running_mean.numpy().reshape(-1, *[1] * (len(shape) - 2)))
    diff = backend.to_numpy(ours._grads["weight"]).astype(np.float64) - theirs.weight.grad.numpy()
    assert np.linalg.norm(diff) < RTOL * np.linalg.norm(np.abs(dy * xhat).sum(axes)) * float(
        np.max(1 / np.sqrt(theirs.running_var.numpy() + eps)))


@pytest.mark.oracle
@pytest.mark.parametrize("affine,track", [(False, True), (True, False), (False, False)])
def test_matches_torch_without_affine_or_running_stats(affine, track, rng):
    import torch

    shape = (6, 4, 3, 2)
    ours, theirs = _pair("BatchNorm2d", shape, rng, affine=affine, track_running_stats=track)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = theirs(xt)
        yt.backward(torch.from_numpy(dy))
        assert rel(ours(x), yt.detach().numpy()) < RTOL, mode
        assert rel(ours.backward(dy), xt.grad.numpy()) < RTOL, mode


@pytest.mark.oracle
def test_state_dict_names_match_torch_and_load_from_torch(rng):
    import torch

    model = gn.Sequential(gn.Linear(5, 4), gn.BatchNorm1d(4), gn.ReLU())
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU())
    assert list(model.state_dict()) == list(tmodel.state_dict())
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in tmodel.named_parameters()]
    tmodel.train()
    for _ in range(3):
        tmodel(torch.randn(8, 5))
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    model.eval()
    tmodel.eval()
    x = rng.standard_normal((7, 5)).astype(np.float32)
    assert rel(model(x), tmodel(torch.from_numpy(x)).detach().numpy()) < RTOL
    assert int(model[1].num_batches_tracked) == 3


def test_state_dict_buffers_and_decay_flags():
    bn = gn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    assert [d for _, _, _, d in bn.parameter_entries()] == [False, False]  # no weight decay on γ, β
    assert list(gn.BatchNorm1d(3, affine=False, track_running_stats=False).state_dict()) == []


@pytest.mark.parametrize("make,shape", [(lambda: gn.BatchNorm1d(4), (6, 4)), (lambda: gn.BatchNorm1d(3), (5, 3, 4)),
                                        (lambda: gn.BatchNorm2d(2), (3, 2, 3, 2)),
                                        (lambda: gn.BatchNorm1d(3, affine=False), (4, 3)),
                                        (lambda: gn.BatchNorm1d(2), (2, 2))])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradcheck(make, shape, mode, rng):
    layer = make()
    if layer.affine:
        layer.weight[...] = rng.uniform(0.5, 2, layer.num_features)
        layer.bias[...] = rng.standard_normal(layer.num_features)
    layer.running_mean[...] = rng.standard_normal(layer.num_features)
    layer.running_var[...] = rng.uniform(0.5, 2, layer.num_features)
    getattr(layer, mode)()
    x = rng.standard_normal(shape) * 2 + 1
    report = gradcheck(layer, x, eps=1e-6, rtol=1e-5, atol=1e-7)
    assert set(report) == {"input"} | ({"weight", "bias"} if layer.affine else set())


def test_train_and_eval_modes_use_batch_and_running_statistics(rng):
    bn = gn.BatchNorm1d(3, momentum=1.0)  # running statistics become the last batch's
    x = (rng.standard_normal((50, 3)) * 3 + 2).astype(np.float32)
    y = bn(x)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1, rtol=1e-3)
    np.testing.assert_allclose(bn.running_mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, x.var(0, ddof=1), rtol=1e-5)  # unbiased
    bn.eval()
    x1 = x[:1]
    np.testing.assert_allclose(bn(x1), (x1 - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + 1e-5), rtol=1e-4, atol=1e-5)
    assert int(bn.num_batches_tracked) == 1


def test_float64_layer_and_dtype_casts(rng):
    bn = gn.BatchNorm2d(2).to(dtype=np.float64)
    assert bn.running_var.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    y = bn(rng.standard_normal((3, 2, 2, 2)).astype(np.float32))  # cast to the layer's dtype
    assert y.dtype == np.float64


def test_bad_input_is_a_clear_error(rng):
    bn = gn.BatchNorm1d(4)
    with pytest.raises(ValueError, match=r"BatchNorm1d: batch statistics need more than one value per channel"):
        bn(np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d: batch statistics need more than one value per channel"):
        gn.BatchNorm2d(2)(np.ones((1, 2, 1, 1), np.float32))
    bn.eval()
    assert bn(np.ones((1, 4), np.float32)).shape == (1, 4)  # fine with running statistics
    bn.train()
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 4 channels \(axis 1\)"):
        bn(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected input of shape \(N, C\) or \(N, C, L\)"):
        bn(np.ones((3, 4, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input of shape \(N, C, H, W\)"):
        gn.BatchNorm2d(4)(np.ones((3, 4), np.float32))
    with pytest.raises(TypeError, match="floating-point input"):
        bn(np.ones((3, 4), np.int32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        gn.BatchNorm1d(4).backward(np.ones((3, 4), np.float32))
    for kwargs, match in [({"num_features": 0}, "num_features must be a positive integer"),
                          ({"num_features": 2.5}, "num_features"),
                          ({"num_features": 3, "eps": 0}, "eps must be a positive number"),
                          ({"num_features": 3, "momentum": -0.1}, r"momentum must be in \[0, 1\] or None"),
                          ({"num_features": 3, "dtype": "int32"}, "dtype must be float32 or float64")]:
        with pytest.raises((ValueError, TypeError), match=match):
            gn.BatchNorm1d(**kwargs)


def test_in_a_flattened_model_gradients_land_in_the_arena(rng):
    model = gn.Sequential(gn.Linear(4, 3), gn.BatchNorm1d(3))
    arena = model.flatten()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    dy = rng.standard_normal((5, 3)).astype(np.float32)
    model(x)
    model.backward(dy)
    grads = dict(model.named_gradients())
    np.testing.assert_allclose(grads["1.bias"], dy.sum(0), rtol=1e-5)
    assert np.shares_memory(grads["1.weight"], arena.grads)
