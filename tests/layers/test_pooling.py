"""MaxPool2d, AvgPool2d, GlobalAvgPool2d: PyTorch's max_pool2d / avg_pool2d /
adaptive_avg_pool2d as the oracle (forward and backward), finite-difference gradients in float64,
shapes and clear errors.

Oracle tolerance: relative 1e-5 in float32. Max pooling selects values (exact forward; the
backward adds dy only where windows overlap); average pooling sums at most kh·kw float32 values,
so both libraries differ by a few roundings (≈1e-7) at most.
"""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.testing import gradcheck

RTOL = 1e-5

# (N, C, H, W), kernel, stride, padding
GEOMETRIES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((3, 2, 9, 7), 2, None, 0),            # odd sizes: the last row/column is dropped
    ((2, 1, 7, 9), 3, 1, 1),               # overlapping windows, padding, single channel
    ((2, 4, 10, 11), (3, 2), (2, 1), (1, 1)),
    ((1, 2, 5, 6), 3, 2, 0),
    ((4, 16, 26, 26), 2, 2, 0),            # the dropout CNN's first pooling
]


def rel(a, b):
    a, b = np.asarray(backend.to_numpy(a), np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,k,s,p", GEOMETRIES)
def test_matches_torch_forward_and_backward(kind, shape, k, s, p, rng, device):
    import torch
    import torch.nn.functional as F

    layer = (gn.MaxPool2d if kind == "max" else gn.AvgPool2d)(k, stride=s, padding=p)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(backend.to_device(x))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(backend.to_device(dy))
    xt = torch.from_numpy(x).requires_grad_(True)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    yt = fn(xt, k, stride=s, padding=p)
    yt.backward(torch.from_numpy(dy))
    assert y.shape == tuple(yt.shape) and y.dtype == np.float32
    if kind == "max":
        np.testing.assert_array_equal(backend.to_numpy(y), yt.detach().numpy())
    assert rel(y, yt.detach().numpy()) < RTOL
    assert rel(dx, xt.grad.numpy()) < RTOL


@pytest.mark.oracle
def test_max_pool_nan_and_ties_like_torch(rng):
    import torch
    import torch.nn.functional as F

    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    x[0, 0, :2, :2] = 0.5        # a four-way tie
    x[0, 1, 2, 2] = np.nan       # a NaN propagates, and takes the gradient
    x[1, 2, 4:6, 4:6] = -np.inf  # a window of -inf
    layer = gn.MaxPool2d(2)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = F.max_pool2d(xt, 2)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())


@pytest.mark.oracle
def test_global_avg_pool_matches_torch(rng, device):
    import torch
    import torch.nn.functional as F

    x = rng.standard_normal((3, 5, 7, 6)).astype(np.float32)
    layer = gn.GlobalAvgPool2d()
    y = layer(backend.to_device(x))
    dy = rng.standard_normal((3, 5)).astype(np.float32)
    dx = layer.backward(backend.to_device(dy))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = F.adaptive_avg_pool2d(xt, 1).flatten(1)
    yt.backward(torch.from_numpy(dy))
    assert y.shape == (3, 5) and dx.shape == x.shape
    assert rel(y, yt.detach().numpy()) < RTOL
    assert rel(dx, xt.grad.numpy()) < RTOL


@pytest.mark.parametrize("layer", [
    gn.MaxPool2d(2), gn.MaxPool2d(3, stride=2, padding=1), gn.MaxPool2d((2, 3), stride=1),
    gn.AvgPool2d(2), gn.AvgPool2d(3, stride=2, padding=1), gn.AvgPool2d((3, 2), stride=(1, 2), padding=(1, 0)),
    gn.GlobalAvgPool2d(),
], ids=lambda l: repr(type(l).__name__))
def test_gradcheck_float64(layer, rng):
    # distinct, well separated values: no ties within the finite-difference step
    x = rng.permutation(2 * 2 * 7 * 5).reshape(2, 2, 7, 5) * 0.1 + rng.uniform(-0.01, 0.01, (2, 2, 7, 5))
    gradcheck(layer, x, max_checks=80)


def test_shapes_and_defaults():
    layer = gn.MaxPool2d(3)
    assert layer.stride == (3, 3) and layer.padding == (0, 0)
    assert layer.output_shape((4, 10, 11)) == (4, 3, 3)
    assert gn.AvgPool2d(3, stride=1, padding=1).output_shape((2, 5, 5)) == (2, 5, 5)
    assert gn.GlobalAvgPool2d().output_shape((7, 3, 3)) == (7,)
    model = gn.Sequential(gn.MaxPool2d(2), gn.GlobalAvgPool2d())
    model(np.ones((1, 3, 4, 4), np.float32))
    assert "(N, 3, 2, 2)" in str(model) and "(N, 3)" in str(model)


@pytest.mark.parametrize("make,match", [
    (lambda: gn.MaxPool2d(0), "MaxPool2d: kernel_size must be an integer >= 1"),
    (lambda: gn.MaxPool2d(2, stride=0), "MaxPool2d: stride must be an integer >= 1"),
    (lambda: gn.AvgPool2d(2, padding=2), r"AvgPool2d: padding must be at most half the kernel size"),
    (lambda: gn.AvgPool2d((2, 2), padding=-1), "AvgPool2d: padding must be an integer >= 0"),
])
def test_bad_arguments_name_the_layer(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_name_the_layer(rng):
    model = gn.Sequential(gn.MaxPool2d(5))
    with pytest.raises(ValueError, match=r"MaxPool2d \(layer 0\): expected a 4-D input"):
        model(np.ones((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d \(layer 0\): kernel \(5, 5\) is larger than the padded input"):
        model(np.ones((1, 1, 4, 8), np.float32))
    with pytest.raises(ValueError, match="GlobalAvgPool2d: expected a 4-D input"):
        gn.GlobalAvgPool2d()(np.ones((2, 3), np.float32))
    for layer in (gn.MaxPool2d(2), gn.AvgPool2d(2), gn.GlobalAvgPool2d()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(np.ones((1, 1, 1, 1), np.float32))
    for layer in (gn.AvgPool2d(2), gn.MaxPool2d(2)):
        layer(np.ones((1, 1, 4, 4), np.float32))
        with pytest.raises(ValueError, match=r"Pool2d: backward expected dy of shape \(1, 1, 2, 2\)"):
            layer.backward(np.ones((1, 1, 3, 3), np.float32))
