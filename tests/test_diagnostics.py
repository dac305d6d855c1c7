"""Diagnostics: signal propagation (why N(0, 1) init fails and He does not), per-layer statistics
during training, vanishing/exploding warnings, locating non-finite values."""
import functools
import math
import warnings

import numpy as np
import pytest

import gpunet as gn
from gpunet import diagnostics as D
from gpunet.layers.base import Layer


def deep_relu(depth, width, init):
    layers = []
    for i in range(depth):
        layers += [gn.Linear(width, width, init=init), gn.ReLU()]
    return gn.Sequential(*layers, gn.Linear(width, 10, init=init))


GAUSS1 = functools.partial(gn.init.gaussian, std=1.0)
TINY = functools.partial(gn.init.gaussian, std=0.01)


@pytest.fixture
def x(rng):
    return rng.normal(size=(256, 64)).astype(np.float32)


def linear_act_std(report):
    return np.array(report.column("act_std", "Linear"))


def test_signal_propagation_shows_why_he_init_works(x):
    depth = 10
    gauss = D.signal_propagation(deep_relu(depth, 64, GAUSS1), x)
    tiny = D.signal_propagation(deep_relu(depth, 64, TINY), x)
    he = D.signal_propagation(deep_relu(depth, 64, "he_normal"), x)
    g, t, h = linear_act_std(gauss), linear_act_std(tiny), linear_act_std(he)
    # N(0, 1): each layer multiplies the std by about sqrt(64 / 2) = 5.7 -> explodes
    assert g[-1] / g[0] > 1e6
    assert np.all(np.diff(np.log(g)) > np.log(3))
    # std 0.01: each layer multiplies it by about 0.057 -> collapses towards 0
    assert t[-1] / t[0] < 1e-9
    # He (std sqrt(2 / 64)): stays of order one through every layer
    assert np.all((h > 0.3) & (h < 3)), h
    # the gradients tell the same story on the way back (a N(0, 1) probe at the output)
    gg, hg = np.array(gauss.column("grad_std", "Linear")), np.array(he.column("grad_std", "Linear"))
    assert gg[0] / gg[-1] > 1e6
    assert np.all((hg > 0.2) & (hg < 5)), hg
    assert gauss.rows[0]["name"] == "0" and gauss.rows[1]["type"] == "ReLU"
    assert "act std" in str(he) and len(he.rows) == 2 * depth + 1


def test_signal_propagation_with_a_loss_and_state_restored(rng):
    model = gn.Sequential(gn.Linear(8, 16), gn.ReLU(), gn.Linear(16, 3))
    model.eval()
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    rep = D.signal_propagation(model, x, y=y, loss=gn.losses.CrossEntropy(), train=True)
    assert not model.training  # the mode it found
    assert all("forward" not in layer.__dict__ for _, layer in model.named_layers())  # hooks removed
    out = model(x)
    # the last layer's output statistics are those of the logits
    assert rep.rows[-1]["act_std"] == pytest.approx(float(out.std()), rel=1e-5)
    # the gradient at the logits is the cross-entropy's: (softmax − onehot)/N
    loss = gn.losses.CrossEntropy()
    loss(out, y)
    assert rep.rows[-1]["grad_std"] == pytest.approx(float(loss.backward().std()), rel=1e-5)
    assert rep.rows[0]["grad_norm"] > 0 and math.isnan(rep.rows[1]["grad_norm"])


def test_diagnostics_callback_records_statistics(data_blobs):
    (x, y) = data_blobs
    gn.seed(3)
    model = gn.Sequential(gn.Linear(8, 16), gn.ReLU(), gn.Linear(16, 3))
    w0 = {name: model.state_dict() for name in ("all",)}["all"]
    diag = D.Diagnostics(every=2)
    t = gn.Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[diag])
    t.fit((x, y), epochs=1, batch_size=40, verbose=0)  # 5 steps: records at 0, 2, 4
    assert [r["step"] for r in diag.records] == [0, 2, 4]
    first = diag.records[0]["layers"]
    assert set(first) == {"0", "1", "2"}
    assert first["1"]["type"] == "ReLU" and first["1"]["act_mean"] > 0 and "grad_norm" not in first["1"]
    # SGD: ΔW = −η∇W, so ‖ΔW‖/‖W‖ = η‖∇W‖/‖W‖ for the layer's weight and bias together
    for name in ("0", "2"):
        wnorm = math.sqrt(sum(float(np.sum(w0[f"{name}.{k}"].astype(np.float64) ** 2)) for k in ("weight", "bias")))
        assert first[name]["update_ratio"] == pytest.approx(0.1 * first[name]["grad_norm"] / wnorm, rel=1e-4)
    steps, values = diag.series("0", "grad_norm")
    assert steps == [0, 2, 4] and all(v > 0 for v in values)
    assert all("forward" not in layer.__dict__ for _, layer in model.named_layers())


@pytest.fixture
def data_blobs(rng):
    c = rng.normal(0, 3, size=(3, 8))
    y = rng.integers(0, 3, 200)
    return (c[y] + rng.normal(size=(200, 8))).astype(np.float32), y


def test_vanishing_and_exploding_warnings(data_blobs):
    x, y = data_blobs
    x = np.tile(x, (1, 8))[:, :64]
    model = deep_relu(8, 64, TINY)
    model[0].weight[...] = np.random.default_rng(0).normal(0, 0.1, (64, 64)).astype(np.float32)
    t = gn.Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.01),
                   metrics=[], callbacks=[D.Diagnostics(every=1)])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t.fit((x, y[:200]), epochs=1, batch_size=100, verbose=0)  # 2 steps, both recorded
    msgs = [str(w.message) for w in rec if issubclass(w.category, D.GradientWarning)]
    assert any(m.startswith("vanishing gradient in layer '0' (Linear) at step 0") for m in msgs), msgs
    assert len(msgs) == len(set(m.split(" at step")[0] for m in msgs))  # once per layer and kind
    assert not any("layer '16'" in m for m in msgs)  # the top layer's gradient is the largest

    big = deep_relu(3, 64, GAUSS1)
    t = gn.Trainer(big, gn.losses.CrossEntropy(), gn.optim.SGD(big, lr=1e-9), metrics=[],
                   callbacks=[D.Diagnostics(every=1, exploding=100.0)])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t.fit((x, y[:200]), epochs=1, batch_size=100, verbose=0)
    msgs = [str(w.message) for w in rec if issubclass(w.category, D.GradientWarning)]
    assert any(m.startswith("exploding gradient in layer '0' (Linear)") for m in msgs), msgs


class Inf(Layer):
    def forward(self, x):
        return x * np.float32(np.inf)

    def backward(self, dy):
        return dy


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_locate_nonfinite(rng):
    model = gn.Sequential(gn.Linear(4, 5), gn.ReLU(), gn.Linear(5, 3))
    loss = gn.losses.CrossEntropy()
    x, y = rng.normal(size=(6, 4)).astype(np.float32), rng.integers(0, 3, 6)
    r = D.locate_nonfinite(model, loss, x, y)
    assert r.kind == "none" and "finite" in str(r)
    bad = x.copy()
    bad[1, 1] = np.nan
    assert D.locate_nonfinite(model, loss, bad, y).kind == "input"
    model[2].bias[1] = np.inf
    r = D.locate_nonfinite(model, loss, x, y)
    assert (r.kind, r.layer, r.layer_type) == ("parameter", "2", "Linear") and "2.bias holds 1 of 3" in r.detail
    model[2].bias[1] = 0
    inf_model = gn.Sequential(gn.Linear(4, 5), Inf(), gn.Linear(5, 3))
    r = D.locate_nonfinite(inf_model, loss, x, y)
    assert (r.kind, r.layer, r.layer_type) == ("activation", "1", "Inf")
    assert str(r).startswith("non-finite activation of layer '1' (Inf)")


@pytest.mark.parametrize("block", ["conv", "batchnorm", "residual"])
def test_layers_fused_with_a_relu_are_seen_by_the_hooks(rng, block):
    """A Sequential runs Conv2d / BatchNorm / Residual → ReLU as one fused step; under the
    diagnostics' hooks the pair runs apart, so both layers are recorded, with the same outputs."""
    gn.seed(0)
    first = {"conv": lambda: gn.Conv2d(1, 4, 3, padding=1), "batchnorm": lambda: gn.BatchNorm2d(1),
             "residual": lambda: gn.Residual(gn.Sequential(gn.Conv2d(1, 1, 3, padding=1)))}[block]()
    model = gn.Sequential(first, gn.ReLU(), gn.Flatten(), gn.Linear(None, 3))
    x = rng.normal(size=(8, 1, 6, 6)).astype(np.float32)
    fused = model(x)
    assert model._ran[0][1] is not None  # fused outside the hooks
    seen = []
    with D.hooks(model, forward=lambda n, l, xi, yo: seen.append((n, yo.copy()))):
        apart = model(x)
    if block == "residual":  # a container: its leaves are hooked, and the ReLU after it
        assert [n for n, _ in seen] == ["0.block.0", "1", "2", "3"]
    else:
        assert [n for n, _ in seen] == ["0", "1", "2", "3"]
        np.testing.assert_array_equal(seen[1][1], np.maximum(seen[0][1], 0))
    np.testing.assert_array_equal(apart, fused)
    assert model(x) is not None and model._ran[0][1] is not None  # fused again after the hooks


def test_locate_nonfinite_names_a_conv_that_a_relu_follows(rng):
    model = gn.Sequential(gn.Conv2d(1, 2, 3), gn.ReLU(), gn.Flatten(), gn.Linear(32, 3))
    model[0].weight[...] = 1e38  # the convolution's output overflows
    x = rng.normal(size=(4, 1, 6, 6)).astype(np.float32)
    with np.errstate(all="ignore"):
        report = D.locate_nonfinite(model, gn.losses.CrossEntropy(), x, np.arange(4) % 3)
    assert "layer '0' (Conv2d)" in str(report), str(report)
