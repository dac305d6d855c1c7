"""A layer followed by a ReLU, fused (Sequential, and Conv2d's activation="relu"): Conv2d, BatchNorm
and Residual give the same bits as the two layers run apart, forward, backward and parameter
gradients (a batch norm's float64 sums may add in another order: its gradients agree to the last
bits); finite-difference gradients of the fused pairs; only those exact layer types fuse, and only
with a ReLU directly after them."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.testing import gradcheck


class Apart(gn.Layer):
    """Runs its children one after another by hand: no fusion."""

    def __init__(self, *layers):
        super().__init__()
        self.items = list(layers)

    def forward(self, x):
        for layer in self.items:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.items):
            dy = layer.backward(dy)
        return dy


def _pair(seed, c_in):
    gn.seed(seed)
    return gn.Conv2d(c_in, 4, 3, padding=1), gn.ReLU()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_conv_relu_equals_the_layers_apart_bit_for_bit(dtype, rng):
    fused = gn.Sequential(*_pair(0, 3), gn.MaxPool2d(2), *_pair(1, 4)).to(dtype=dtype)
    apart = Apart(*_pair(0, 3), gn.MaxPool2d(2), *_pair(1, 4)).to(dtype=dtype)
    assert [type(a) for a, r in fused._steps() if r is not None] == [gn.Conv2d, gn.Conv2d]
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    x[0, 0, :2, :2] = 0.0  # exact zeros reach the ReLU kink through a zero-padded window
    for _ in range(2):  # the second step reuses every scratch buffer
        y, y0 = fused(x), apart(x)
        assert y.tobytes() == y0.tobytes()
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx, dx0 = fused.backward(dy), apart.backward(dy)
        assert dx.tobytes() == dx0.tobytes()
        for (name, g), (_, g0) in zip(fused.named_gradients(), apart.named_gradients()):
            assert g.tobytes() == g0.tobytes(), name
    assert fused[1]._y is not None  # the skipped ReLU still holds its output, as if it had run


def test_activation_relu_equals_conv_then_relu(rng):
    gn.seed(3)
    conv = gn.Conv2d(2, 3, 3, stride=2, activation="relu")
    gn.seed(3)
    plain, relu = gn.Conv2d(2, 3, 3, stride=2), gn.ReLU()
    x = rng.standard_normal((3, 2, 9, 9)).astype(np.float32)
    y = conv(x)
    assert y.tobytes() == relu(plain(x)).tobytes()
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert conv.backward(dy).tobytes() == plain.backward(relu.backward(dy)).tobytes()
    assert conv._grads["weight"].tobytes() == plain._grads["weight"].tobytes()
    assert conv._grads["bias"].tobytes() == plain._grads["bias"].tobytes()


def test_fused_pair_passes_a_finite_difference_check(rng):
    gn.seed(4)
    model = gn.Sequential(gn.Conv2d(2, 3, 3, padding=1), gn.ReLU())
    model.to(dtype="float64")
    x = rng.standard_normal((2, 2, 5, 5))
    x = np.where(np.abs(x) < 1e-2, 0.5, x)
    report = gradcheck(model, x, max_checks=60)
    assert set(report) == {"input", "0.weight", "0.bias"}


def test_only_the_fusing_layers_directly_followed_by_relu_fuse():
    class MyConv(gn.Conv2d):
        pass

    class MyNorm(gn.BatchNorm2d):
        pass

    cases = [
        (gn.Sequential(gn.Conv2d(1, 2, 3), gn.ReLU()), 1),
        (gn.Sequential(gn.Conv2d(1, 2, 3), gn.LeakyReLU()), 0),
        (gn.Sequential(gn.Conv2d(1, 2, 3), gn.BatchNorm2d(2), gn.ReLU()), 1),  # the batch norm's
        (gn.Sequential(gn.Conv2d(1, 2, 3), MyNorm(2), gn.ReLU()), 0),
        (gn.Sequential(gn.Linear(3, 2), gn.BatchNorm1d(2), gn.ReLU(), gn.Linear(2, 2), gn.ReLU()), 1),
        (gn.Sequential(gn.Residual(gn.Conv2d(2, 2, 3, padding=1)), gn.ReLU()), 1),
        (gn.Sequential(gn.Residual(gn.Conv2d(2, 2, 3, padding=1)), gn.Tanh()), 0),
        (gn.Sequential(gn.Conv2d(1, 2, 3, activation="tanh"), gn.ReLU()), 0),
        (gn.Sequential(MyConv(1, 2, 3), gn.ReLU()), 0),
        (gn.Sequential(gn.ReLU(), gn.Conv2d(1, 2, 3)), 0),
    ]
    for model, fused in cases:
        assert sum(r is not None for _, r in model._steps()) == fused, model


def test_the_plan_follows_changes_to_the_children(rng):
    model = gn.Sequential(gn.Conv2d(1, 2, 3), gn.Tanh())
    x = rng.standard_normal((1, 1, 5, 5)).astype(np.float32)
    model(x)
    assert all(r is None for _, r in model._steps())
    model.add_child("1", gn.ReLU())
    assert sum(r is not None for _, r in model._steps()) == 1
    y = model(x)
    np.testing.assert_array_equal(y, np.maximum(model[0].forward(x), 0))


def _bn_pair(seed, kind, c):
    gn.seed(seed)
    return (gn.BatchNorm2d(c) if kind == "2d" else gn.BatchNorm1d(c)), gn.ReLU()


def _close(a, b, dtype):
    """Equal, or apart by float64 summation order only (far below float32's resolution)."""
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert np.linalg.norm(np.asarray(a, np.float64) - b) <= tol * np.linalg.norm(np.asarray(b, np.float64))


@pytest.mark.parametrize("kind,shape", [("2d", (4, 3, 6, 6)), ("2d", (32, 8, 16, 16)), ("1d", (64, 24))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_batchnorm_relu_equals_the_layers_apart(kind, shape, dtype, rng):
    """Training and evaluation mode; (32, 8, 16, 16) runs the parallel kernels."""
    c = shape[1]
    fused = gn.Sequential(*_bn_pair(0, kind, c)).to(dtype=dtype)
    apart = Apart(*_bn_pair(0, kind, c)).to(dtype=dtype)
    assert sum(r is not None for _, r in fused._steps()) == 1
    x = (rng.standard_normal(shape) + 0.3).astype(dtype)
    for training in (True, True, False):
        fused.train(training)
        apart.train(training)
        for layer in apart.items:
            layer.train(training)
        y, y0 = fused(x), apart(x)
        assert y.tobytes() == y0.tobytes() and (y == 0).any()
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx, dx0 = fused.backward(dy), apart.backward(dy)
        _close(dx, dx0, dtype)
        for (name, g), (_, g0) in zip(fused.named_gradients(), apart.named_gradients()):
            _close(g, g0, dtype)
        for (name, b), (_, b0) in zip(fused.named_buffers(), apart.named_buffers()):
            assert b.tobytes() == b0.tobytes(), name


def _block(seed, shortcut):
    gn.seed(seed)
    body = gn.Sequential(gn.Conv2d(3, 4, 3, stride=2 if shortcut else 1, padding=1, bias=False), gn.BatchNorm2d(4))
    short = gn.Sequential(gn.Conv2d(3, 4, 1, stride=2, bias=False), gn.BatchNorm2d(4)) if shortcut else None
    return gn.Residual(body, short) if shortcut else gn.Residual(gn.Sequential(gn.Conv2d(3, 3, 3, padding=1)))


@pytest.mark.parametrize("shortcut", [False, True])
def test_sequential_residual_relu_equals_the_layers_apart_bit_for_bit(shortcut, rng):
    fused = gn.Sequential(_block(0, shortcut), gn.ReLU())
    apart = Apart(_block(0, shortcut), gn.ReLU())
    x = rng.standard_normal((300, 3, 8, 8)).astype(np.float32)  # above the kernels' serial size
    for _ in range(2):
        y, y0 = fused(x), apart(x)
        assert y.tobytes() == y0.tobytes() and (y == 0).any()
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, dx0 = fused.backward(dy), apart.backward(dy)
        assert dx.tobytes() == dx0.tobytes()
        for (name, g), (_, g0) in zip(fused.named_gradients(), apart.named_gradients()):
            assert g.tobytes() == g0.tobytes(), name
    with pytest.raises(ValueError, match="dy has shape"):
        fused[0].backward(dy[:, :2])


@pytest.mark.parametrize("which", ["batchnorm", "residual"])
def test_fused_batchnorm_and_residual_pass_a_finite_difference_check(which, rng):
    gn.seed(5)
    if which == "batchnorm":
        model = gn.Sequential(gn.Conv2d(2, 3, 3, padding=1), gn.BatchNorm2d(3), gn.ReLU())
    else:
        model = gn.Sequential(gn.Residual(gn.Sequential(gn.Conv2d(2, 2, 3, padding=1), gn.BatchNorm2d(2))), gn.ReLU())
    model.to(dtype="float64")
    assert sum(r is not None for _, r in model._steps()) == 1
    x = rng.standard_normal((3, 2, 4, 4))
    report = gradcheck(model, x, max_checks=60)
    assert "input" in report and len(report) >= 3
