"""Dense layers and activations: finite-difference gradients, shapes, errors, printing."""
import numpy as np
import pytest

import gpunet as gn


def _x(rng, *shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("make, n_in", [
    (lambda: gn.Linear(7, 5), 7),
    (lambda: gn.Linear(3, 4, bias=False), 3),
    (gn.ReLU, 7),
    (lambda: gn.LeakyReLU(0.1), 7),
    (gn.Tanh, 7),
    (gn.Sigmoid, 7),
    (gn.Softmax, 7),
    (gn.Identity, 7),
    (lambda: gn.Sequential(gn.Linear(7, 6), gn.Tanh(), gn.Linear(6, 3), gn.Softmax()), 7),
], ids=["linear", "linear_nobias", "relu", "leaky", "tanh", "sigmoid", "softmax", "identity", "sequential"])
def test_backward_matches_finite_differences(make, n_in, rng):
    layer = make()
    x = _x(rng, 4, n_in)
    x = np.where(np.abs(x) < 1e-3, 0.5, x)  # keep ReLU-type kinks away from the finite-difference step
    report = gn.gradcheck(layer, x)
    expected = {"input"} | {name for name, _ in layer.named_parameters()}
    assert set(report) == expected
    assert all(v <= 1.0 for v in report.values())


def test_gradcheck_catches_a_wrong_backward(rng):
    class Broken(gn.Tanh):
        def backward(self, dy):
            return dy * (1 - self._y)  # missing the square

    with pytest.raises(gn.testing.GradcheckError, match="input"):
        gn.gradcheck(Broken(), _x(rng, 3, 4))


def test_flatten_roundtrip_and_gradcheck(rng):
    f = gn.Flatten()
    x = _x(rng, 2, 3, 4, 5)
    y = f(x)
    assert y.shape == (2, 60)
    assert f.backward(y).shape == x.shape
    gn.gradcheck(f, x)


def test_linear_matches_formula(rng):
    lin = gn.Linear(6, 4)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    lin.bias[...] = rng.standard_normal(4)
    y = lin(x)
    np.testing.assert_allclose(y, x @ lin.weight.T + lin.bias, rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal((5, 4)).astype(np.float32)
    dx = lin.backward(dy)
    np.testing.assert_allclose(dx, dy @ lin.weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.gradients()[0], dy.T @ x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin.gradients()[1], dy.sum(0), rtol=1e-5, atol=1e-6)


def test_sigmoid_is_stable_for_large_inputs():
    s = gn.Sigmoid()
    y = s(np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32))
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])
    assert np.isfinite(y).all()


def test_linear_wrong_feature_count_names_the_layer():
    model = gn.Sequential(gn.Linear(784, 10))
    with pytest.raises(ValueError, match=r"Linear \(layer 0\).*\(N, 784\).*\(2, 100\)"):
        model(np.zeros((2, 100), dtype=np.float32))


def test_non_floating_input_is_rejected():
    with pytest.raises(TypeError, match="floating-point input.*uint8"):
        gn.Linear(4, 2)(np.ones((3, 4), dtype=np.uint8))


def test_three_d_input_to_linear_is_rejected():
    with pytest.raises(ValueError, match="2-D input"):
        gn.Linear(4, 2)(np.ones((3, 4, 1), dtype=np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="in_features"):
        gn.Linear(0, 3)
    with pytest.raises(ValueError, match="negative_slope"):
        gn.LeakyReLU(-1)
    with pytest.raises(ValueError, match="start_dim"):
        gn.Flatten(0)


def test_print_shows_layers_output_sizes_and_counts():
    model = gn.Sequential(gn.Linear(784, 512), gn.ReLU(), gn.Linear(512, 10))
    text = repr(model)
    assert "Linear(784, 512)" in text and "(N, 512)" in text and "401,920" in text
    assert "(N, 10)" in text and "total parameters: 407,050" in text


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="before forward"):
        gn.Linear(2, 2).backward(np.ones((1, 2), dtype=np.float32))


def test_train_eval_propagates():
    model = gn.Sequential(gn.Linear(2, 2), gn.Sequential(gn.ReLU()))
    model.eval()
    assert not any(layer.training for _, layer in model.named_layers())
    model.train()
    assert all(layer.training for _, layer in model.named_layers())


def test_first_layer_skips_input_gradient_when_not_needed(rng):
    model = gn.Sequential(gn.Linear(4, 3), gn.ReLU(), gn.Linear(3, 2))
    x = rng.standard_normal((5, 4)).astype(np.float32)
    model(x)
    dy = rng.standard_normal((5, 2)).astype(np.float32)
    dx = model.backward(dy)
    grads = {k: v.copy() for k, v in model.named_gradients()}
    assert dx.shape == x.shape
    model.need_input_grad = False
    model(x)
    assert model.backward(dy) is None
    for k, v in model.named_gradients():
        np.testing.assert_array_equal(v, grads[k])  # parameter gradients unchanged
    assert model[2].need_input_grad  # only the first layer skips its dx


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_activations_match_torch(name, rng, device):
    """Forward and backward against torch.nn.functional in float32, on inputs that include exact
    zeros (where ReLU's derivative is taken as 0, as in PyTorch) and values far in the tails."""
    import torch
    import torch.nn.functional as F

    from gpunet import backend

    layer, fn = {"relu": (gn.ReLU(), F.relu),
                 "leaky_relu": (gn.LeakyReLU(0.05), lambda t: F.leaky_relu(t, 0.05)),
                 "tanh": (gn.Tanh(), torch.tanh),
                 "sigmoid": (gn.Sigmoid(), torch.sigmoid)}[name]
    x = (rng.standard_normal((37, 129)) * 4).astype(np.float32)
    x[0, :10] = 0.0
    x[1, :4] = [60.0, -60.0, 1e-30, -1e-30]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y = layer(backend.to_device(x))
    dx = layer.backward(backend.to_device(dy))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = fn(xt)
    yt.backward(torch.from_numpy(dy))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(backend.to_numpy(y), yt.detach().numpy(), rtol=2e-6, atol=1e-7)
    # dx = dy·(1 − y²) or dy·y(1 − y): one ulp of difference in y (about 6e-8 near 1) moves the
    # derivative by up to 2·ulp·|dy| in absolute terms, where it is nearly zero
    np.testing.assert_allclose(backend.to_numpy(dx), xt.grad.numpy(), rtol=2e-6, atol=2 * 6e-8 * np.abs(dy).max())
