"""LayerNorm layer: PyTorch as the oracle (float32 within 1e-5 relative; float64 where PyTorch's
float32 loses digits), finite-difference gradients in float64, names, modes and clear errors."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.testing import gradcheck

RTOL = 1e-5


def rel(a, b):
    a, b = np.asarray(backend.to_numpy(a), np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _pair(normalized_shape, rng, dtype=np.float32, **kw):
    import torch

    ours = gn.LayerNorm(normalized_shape, dtype=dtype, **kw)
    theirs = torch.nn.LayerNorm(normalized_shape, dtype=getattr(torch, np.dtype(dtype).name), **kw)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            v = (rng.uniform(0.5, 2.0, p.shape) * rng.choice([-1, 1], p.shape) if name == "weight"
                 else rng.standard_normal(p.shape)).astype(dtype)
            getattr(ours, name)[...] = backend.to_device(v, ours.device)
            p.copy_(torch.from_numpy(v))
    return ours, theirs


def _run_both(ours, theirs, x, dy):
    import torch

    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    y = ours(backend.to_device(x))
    dx = ours.backward(backend.to_device(dy))
    return (y, yt.detach().numpy()), (dx, xt.grad.numpy())


CASES = [((32, 64), 64, {}), ((4, 5, 6), (5, 6), {}), ((2, 3, 4, 5), (3, 4, 5), {}), ((7, 10), 10, {"bias": False}),
         ((6, 3, 8), 8, {"elementwise_affine": False}), ((9,), 9, {}),
         ((3, 2), 2, {"eps": 1.0}), ((4, 8), 8, {"eps": 1e-3})]


@pytest.mark.oracle
@pytest.mark.parametrize("shape,normalized_shape,kw", CASES)
def test_matches_torch_forward_backward_and_parameter_gradients(shape, normalized_shape, kw, rng, device):
    ours, theirs = _pair(normalized_shape, rng, **kw)
    for mode in ("train", "eval"):  # the same in both modes
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x = (rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-3, 3)).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        (y, yt), (dx, dxt) = _run_both(ours, theirs, x, dy)
        assert rel(y, yt) < RTOL and rel(dx, dxt) < RTOL, mode
        # dγ and dβ add one term per sample; float32 rounding is bounded by Σ|terms|, not by the sum
        k = np.ndim(np.zeros(normalized_shape))
        axes, feat = tuple(range(len(shape) - k)), tuple(range(len(shape) - k, len(shape)))
        x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
        xhat = (x64 - x64.mean(feat, keepdims=True)) / np.sqrt(x64.var(feat, keepdims=True) + ours.eps)
        terms = {"weight": dy64 * xhat, "bias": dy64}
        for name, p in theirs.named_parameters():
            diff = backend.to_numpy(ours._grads[name]).astype(np.float64) - p.grad.numpy()
            assert np.linalg.norm(diff) < RTOL * np.linalg.norm(np.abs(terms[name]).sum(axes)), name
            p.grad = None


@pytest.mark.oracle
def test_large_means_match_torch_in_float64():
    """Samples 1e4 ± 1e-2: gpunet's float32 layer keeps x̂ to float32 precision (its statistics are
    float64) and matches PyTorch's float64 layer; PyTorch's own float32 layer is the one off."""
    import torch

    rng = np.random.default_rng(2)
    x = (1e4 + 1e-2 * rng.standard_normal((16, 128))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ours = gn.LayerNorm(128)
    theirs = torch.nn.LayerNorm(128, dtype=torch.float64)
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy.astype(np.float64)))
    assert rel(ours(x), yt.detach().numpy()) < 1e-6
    assert rel(ours.backward(dy), xt.grad.numpy()) < 1e-5
    with torch.no_grad():
        torch32 = torch.nn.LayerNorm(128)(torch.from_numpy(x)).numpy()
    assert rel(torch32, yt.detach().numpy()) > 1e-5  # why the float64 oracle: float32 x − μ rounds


@pytest.mark.parametrize("make,shape", [(lambda: gn.LayerNorm(5), (4, 5)), (lambda: gn.LayerNorm((3, 4)), (2, 3, 4)),
                                        (lambda: gn.LayerNorm(6, bias=False), (3, 6)),
                                        (lambda: gn.LayerNorm(4, elementwise_affine=False), (3, 2, 4)),
                                        (lambda: gn.LayerNorm(2, eps=0.5), (3, 2)),
                                        (lambda: gn.GroupNorm(2, 4), (3, 4, 3)), (lambda: gn.GroupNorm(1, 3), (2, 3, 2, 2)),
                                        (lambda: gn.GroupNorm(3, 3, affine=False), (2, 3, 4))])
def test_gradcheck(make, shape, rng):
    layer = make()
    for name, p in layer.named_parameters():
        p[...] = rng.uniform(0.5, 2, p.shape) if name == "weight" else rng.standard_normal(p.shape)
    report = gradcheck(layer, rng.standard_normal(shape) * 2 + 1, eps=1e-6, rtol=1e-5, atol=1e-7)
    assert set(report) == {"input"} | {name for name, _ in layer.named_parameters()}


def test_names_decay_and_state_dict_follow_pytorch():
    ln = gn.LayerNorm((3, 4))
    assert list(ln.state_dict()) == ["weight", "bias"]
    assert ln.weight.shape == ln.bias.shape == (3, 4)
    assert np.all(ln.weight == 1) and np.all(ln.bias == 0)
    assert [decay for _, _, _, decay in ln.parameter_entries()] == [False, False]
    assert list(gn.LayerNorm(3, bias=False).state_dict()) == ["weight"]
    assert list(gn.LayerNorm(3, elementwise_affine=False).state_dict()) == []
    assert "LayerNorm((3, 4), eps=1e-05)" in repr(ln)


def test_trains_inside_a_model_on_any_batch_size(rng):
    model = gn.Sequential(gn.Linear(6, 8), gn.LayerNorm(8), gn.ReLU(), gn.Linear(8, 2))
    opt = gn.optim.Adam(model.parameters(), lr=0.05)
    x = rng.standard_normal((1, 6)).astype(np.float32)  # one sample: batch norm could not train on it
    loss = gn.losses.MSE()
    first = None
    for _ in range(30):
        value = float(loss(model(x), np.ones((1, 2), np.float32)))
        first = value if first is None else first
        model.backward(loss.backward())
        opt.step()
        opt.zero_grad()
    assert value < 0.01 * first


def test_float64_layer_and_input_casts(rng):
    ln = gn.LayerNorm(4).to(dtype=np.float64)
    assert ln(rng.standard_normal((3, 4)).astype(np.float32)).dtype == np.float64
    bare = gn.LayerNorm(4, elementwise_affine=False)  # no parameters: the input's precision is kept
    assert bare(np.ones((2, 4), np.float32)).dtype == np.float32
    assert bare(np.ones((2, 4))).dtype == np.float64


@pytest.mark.oracle
def test_one_normalized_value_gives_the_bias_and_no_input_gradient(rng):
    """D = 1: x̂ = 0, so y = β and dx = 0 exactly (PyTorch returns rounding noise of 1e-7 there)."""
    ours, theirs = _pair(1, rng, eps=0.5)
    x = rng.standard_normal((5, 1)).astype(np.float32)
    (y, yt), (dx, _) = _run_both(ours, theirs, x, rng.standard_normal((5, 1)).astype(np.float32))
    assert np.array_equal(y, np.broadcast_to(ours.bias, (5, 1))) and rel(y, yt) < RTOL
    assert not dx.any()


def test_bad_input_is_a_clear_error():
    ln = gn.LayerNorm((3, 4))
    with pytest.raises(ValueError, match=r"LayerNorm: expected input of shape \(\*, 3, 4\), got \(2, 4, 3\)"):
        ln(np.ones((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match="expected at least 2 dimensions"):
        ln(np.ones(12, np.float32))
    with pytest.raises(TypeError, match="floating-point input"):
        ln(np.ones((2, 3, 4), np.int32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        gn.LayerNorm(4).backward(np.ones((2, 4), np.float32))
    ln(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"LayerNorm.backward: dy has shape \(2, 12\), expected \(2, 3, 4\)"):
        ln.backward(np.ones((2, 12), np.float32))
    for kwargs, match in [({"normalized_shape": 0}, "normalized_shape must be a positive integer"),
                          ({"normalized_shape": ()}, "non-empty tuple"),
                          ({"normalized_shape": (3, 2.5)}, "normalized_shape"),
                          ({"normalized_shape": "4"}, "normalized_shape"),
                          ({"normalized_shape": 3, "eps": -1}, "eps must be a positive number"),
                          ({"normalized_shape": 3, "dtype": "int32"}, "dtype must be float32 or float64")]:
        with pytest.raises((ValueError, TypeError), match=match):
            gn.LayerNorm(**kwargs)


# ------------------------------------------------------------------ GroupNorm (on the layer-norm kernels)
GROUP_CASES = [(2, 4, (3, 4, 5, 5), True, 1e-5), (1, 6, (2, 6, 7), True, 1e-5), (3, 3, (4, 3, 2, 2), False, 1e-5),
               (6, 6, (2, 6, 3, 3), True, 1e-5), (4, 8, (5, 8), True, 1.0)]  # two values per group: eps = 1


@pytest.mark.oracle
@pytest.mark.parametrize("groups,channels,shape,affine,eps", GROUP_CASES)
def test_group_norm_matches_torch(groups, channels, shape, affine, eps, rng, device):
    import torch

    ours = gn.GroupNorm(groups, channels, eps=eps, affine=affine)
    theirs = torch.nn.GroupNorm(groups, channels, eps=eps, affine=affine)
    if affine:
        w = (rng.uniform(0.5, 2, channels) * rng.choice([-1, 1], channels)).astype(np.float32)
        b = rng.standard_normal(channels).astype(np.float32)
        ours.weight[...], ours.bias[...] = backend.to_device(w, ours.device), backend.to_device(b, ours.device)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(w))
            theirs.bias.copy_(torch.from_numpy(b))
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    (y, yt), (dx, dxt) = _run_both(ours, theirs, x, dy)
    assert rel(y, yt) < RTOL and rel(dx, dxt) < RTOL
    if affine:
        for name in ("weight", "bias"):
            assert rel(ours._grads[name], getattr(theirs, name).grad.numpy()) < RTOL, name


def test_group_norm_names_and_errors():
    g = gn.GroupNorm(2, 4)
    assert list(g.state_dict()) == ["weight", "bias"] and g.weight.shape == (4,)
    assert "GroupNorm(2, 4, eps=1e-05)" in repr(g)
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        gn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="num_groups must be a positive integer"):
        gn.GroupNorm(0, 4)
    with pytest.raises(ValueError, match=r"GroupNorm: expected 4 channels \(axis 1\)"):
        g(np.ones((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match="expected at least 2 dimensions"):
        g(np.ones(4, np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        gn.GroupNorm(2, 4).backward(np.ones((2, 4), np.float32))
