"""Residual and Concat: shapes, gradient routing to every path, finite-difference gradients in
float64, PyTorch-style names (checked by loading a torch module's state dict), printing, errors."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.testing import gradcheck

RTOL = 1e-5  # float32 against torch: sums of a few hundred products, different order (see test_conv)


def rel(a, b):
    a, b = np.asarray(backend.to_numpy(a), np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _x(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_identity_residual_adds_input_and_routes_gradient_to_both_paths(rng):
    block = gn.Sequential(gn.Conv2d(3, 3, 3, padding=1), gn.Tanh())
    twin = gn.Sequential(gn.Conv2d(3, 3, 3, padding=1), gn.Tanh())
    twin.load_state_dict(block.state_dict())
    res = gn.Residual(block)
    x, dy = _x(rng, (2, 3, 5, 5)), _x(rng, (2, 3, 5, 5))
    np.testing.assert_allclose(res(x), twin(x) + x, rtol=1e-6)
    dx = res.backward(dy)
    np.testing.assert_allclose(dx, twin.backward(dy) + dy, rtol=1e-6, atol=1e-7)
    for (name, g), (_, g2) in zip(res.named_gradients(), twin.named_gradients()):
        np.testing.assert_allclose(g, g2, rtol=1e-6, atol=1e-7)
    assert [n for n, _ in res.named_parameters()] == ["block.0.weight", "block.0.bias"]


def test_projection_shortcut_routes_gradient_to_its_parameters(rng):
    res = gn.Residual(gn.Sequential(gn.Conv2d(2, 4, 3, stride=2, padding=1), gn.ReLU()),
                      gn.Conv2d(2, 4, 1, stride=2, bias=False))
    alone = gn.Conv2d(2, 4, 1, stride=2, bias=False)
    alone.load_state_dict(res.shortcut.state_dict())
    x, dy = _x(rng, (3, 2, 7, 7)), _x(rng, (3, 4, 4, 4))
    assert res(x).shape == (3, 4, 4, 4)
    res.backward(dy)
    alone(x)
    alone.backward(dy)
    np.testing.assert_array_equal(res.shortcut._grads["weight"], alone._grads["weight"])
    assert [n for n, _ in res.named_parameters()] == ["block.0.weight", "block.0.bias", "shortcut.weight"]
    assert res.output_shape((2, 7, 7)) == (4, 4, 4)


def test_residual_gradcheck_float64(rng):
    res = gn.Residual(gn.Sequential(gn.Conv2d(2, 3, 3, stride=2, padding=1), gn.Tanh(), gn.Conv2d(3, 3, 1)),
                      gn.Sequential(gn.Conv2d(2, 3, 1, stride=2), gn.Tanh()))
    report = gradcheck(res, rng.standard_normal((2, 2, 5, 5)), max_checks=25)
    assert {"input", "block.0.weight", "block.2.bias", "shortcut.0.weight"} <= set(report)


def test_residual_shape_mismatch_is_a_clear_error(rng):
    res = gn.Residual(gn.Conv2d(2, 4, 3, padding=1))
    with pytest.raises(ValueError, match=r"Residual: the block's output \(1, 4, 5, 5\) and the input \(identity "
                                         r"shortcut\) \(1, 2, 5, 5\) differ"):
        res(_x(rng, (1, 2, 5, 5)))


def test_concat_splits_gradient_by_branch(rng):
    a, b = gn.Conv2d(3, 2, 1), gn.Conv2d(3, 5, 3, padding=1)
    a2, b2 = gn.Conv2d(3, 2, 1), gn.Conv2d(3, 5, 3, padding=1)
    a2.load_state_dict(a.state_dict())
    b2.load_state_dict(b.state_dict())
    cat = gn.Concat([a, b])
    x, dy = _x(rng, (2, 3, 4, 4)), _x(rng, (2, 7, 4, 4))
    y = cat(x)
    assert y.shape == (2, 7, 4, 4)
    np.testing.assert_array_equal(y[:, :2], a2(x))
    np.testing.assert_array_equal(y[:, 2:], b2(x))
    dx = cat.backward(dy)
    dxa, dxb = a2.backward(dy[:, :2].copy()), b2.backward(dy[:, 2:].copy())
    np.testing.assert_allclose(dx, dxa + dxb, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(a._grads["weight"], a2._grads["weight"])
    np.testing.assert_array_equal(b._grads["bias"], b2._grads["bias"])
    assert [n for n, _ in cat.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_concat_on_another_axis_and_gradcheck(rng):
    cat = gn.Concat([gn.Sequential(gn.Conv2d(2, 3, 3, padding=1), gn.Tanh()),
                     gn.Sequential(gn.MaxPool2d(3, stride=1, padding=1), gn.Conv2d(2, 1, 1)),
                     gn.AvgPool2d(3, stride=1, padding=1)])
    x = rng.permutation(2 * 2 * 5 * 4).reshape(2, 2, 5, 4) * 0.05  # distinct values: no max-pool ties
    gradcheck(cat, x, max_checks=20)
    assert cat.output_shape((2, 5, 4)) == (6, 5, 4)
    rows = gn.Concat([gn.Identity(), gn.AvgPool2d((1, 1))], axis=2)
    y = rows(_x(rng, (1, 2, 3, 4)))
    assert y.shape == (1, 2, 6, 4)
    gradcheck(rows, rng.standard_normal((1, 2, 3, 4)))


def test_concat_errors(rng):
    with pytest.raises(ValueError, match="Concat: branches must hold at least one layer"):
        gn.Concat([])
    with pytest.raises(ValueError, match="Concat: axis must be >= 1"):
        gn.Concat([gn.Identity()], axis=0)
    cat = gn.Concat([gn.Conv2d(2, 2, 3), gn.Conv2d(2, 2, 1)])
    with pytest.raises(ValueError, match=r"Concat: branch 1 gives shape \(1, 2, 5, 5\), branch 0 gives "
                                         r"\(1, 2, 3, 3\); they must agree except on axis 1"):
        cat(_x(rng, (1, 2, 5, 5)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        gn.Concat([gn.Identity()]).backward(_x(rng, (1, 2)))


def test_need_input_grad_false_reaches_the_paths(rng):
    net = gn.Sequential(gn.Residual(gn.Conv2d(2, 2, 3, padding=1), gn.Conv2d(2, 2, 1)),
                        gn.Concat([gn.Conv2d(2, 1, 1), gn.Conv2d(2, 2, 1)]))
    x, dy = _x(rng, (2, 2, 4, 4)), _x(rng, (2, 3, 4, 4))
    net(x)
    net.backward(dy)
    grads = {k: v.copy() for k, v in net.named_gradients()}
    net.need_input_grad = False
    net(x)
    assert net.backward(dy) is None
    assert net[0].block.need_input_grad is False and net[0].shortcut.need_input_grad is False
    for k, v in net.named_gradients():
        np.testing.assert_array_equal(v, grads[k])
    net.need_input_grad = True
    net(x)
    assert net.backward(dy).shape == x.shape


def test_print_shows_branch_shapes(rng):
    model = gn.Sequential(gn.Residual(gn.Conv2d(1, 4, 3, stride=2, padding=1), gn.Conv2d(1, 4, 1, stride=2)),
                          gn.Concat([gn.Conv2d(4, 2, 1), gn.MaxPool2d(3, stride=1, padding=1)]))
    model(_x(rng, (1, 1, 8, 8)))
    text = str(model)
    assert "(block) Conv2d" in text and "(shortcut) Conv2d" in text
    assert "(N, 4, 4, 4)" in text and "(N, 6, 4, 4)" in text and "(N, 2, 4, 4)" in text


@pytest.mark.oracle
def test_residual_names_match_a_torch_module(rng):
    """A torch module with the same attribute names loads into the gpunet block by state dict
    and computes the same thing (train-mode batch norm, forward and backward)."""
    import torch
    import torch.nn as nn

    class TorchBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                                       nn.Conv2d(6, 6, 3, 1, 1, bias=False), nn.BatchNorm2d(6))
            self.shortcut = nn.Sequential(nn.Conv2d(3, 6, 1, 2, bias=False), nn.BatchNorm2d(6))

        def forward(self, x):
            return self.block(x) + self.shortcut(x)

    theirs = TorchBlock()
    ours = gn.models.basic_block(3, 6, stride=2)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x, dy = _x(rng, (4, 3, 9, 9)), _x(rng, (4, 6, 5, 5))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(dy))
    assert rel(ours(x), yt.detach().numpy()) < RTOL
    assert rel(ours.backward(dy), xt.grad.numpy()) < RTOL
    tgrads = {k: v.grad.numpy() for k, v in theirs.named_parameters()}
    for name, g in ours.named_gradients():
        assert rel(g, tgrads[name]) < RTOL, name
