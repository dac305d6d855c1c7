"""Conv2d → ReLU fused (Sequential and activation="relu"): the same bits as the two layers run
apart, forward, backward and parameter gradients; finite-difference gradients of the fused pair;
the fusion applies only to a plain Conv2d followed directly by a ReLU."""
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


def test_only_a_plain_conv_directly_followed_by_relu_fuses():
    class MyConv(gn.Conv2d):
        pass

    cases = [
        (gn.Sequential(gn.Conv2d(1, 2, 3), gn.ReLU()), 1),
        (gn.Sequential(gn.Conv2d(1, 2, 3), gn.LeakyReLU()), 0),
        (gn.Sequential(gn.Conv2d(1, 2, 3), gn.BatchNorm2d(2), gn.ReLU()), 0),
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
