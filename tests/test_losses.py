"""Losses against hand-computed values and gradients."""
import numpy as np
import pytest

import gpunet as gn


def test_cross_entropy_hand_computed():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    y = np.array([2, 0])
    ce = gn.losses.CrossEntropy()
    value = ce(logits, y)
    # row 0: log(e^1+e^2+e^3) - 3 = 0.40760596444; row 1: log 3 = 1.09861228867
    assert value.shape == ()
    np.testing.assert_allclose(value, (0.40760596444 + 1.09861228867) / 2, rtol=1e-10)
    g = ce.backward()
    p0 = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(g[0], (p0 - [0, 0, 1]) / 2, rtol=1e-10)
    np.testing.assert_allclose(g[1], (np.full(3, 1 / 3) - [1, 0, 0]) / 2, rtol=1e-10)


def test_cross_entropy_is_stable_for_huge_logits():
    ce = gn.losses.CrossEntropy()
    v = ce(np.array([[1e4, 0.0], [0.0, -1e4]], dtype=np.float32), np.array([0, 0]))
    assert np.isfinite(v) and abs(float(v)) < 1e-6
    assert np.isfinite(ce.backward()).all()


def test_cross_entropy_gradient_matches_finite_differences(rng):
    logits = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    ce = gn.losses.CrossEntropy()
    ce(logits, y)
    g = ce.backward()
    eps = 1e-6
    for i in range(5):
        for j in range(4):
            lp, lm = logits.copy(), logits.copy()
            lp[i, j] += eps
            lm[i, j] -= eps
            num = (float(gn.losses.CrossEntropy()(lp, y)) - float(gn.losses.CrossEntropy()(lm, y))) / (2 * eps)
            assert abs(num - g[i, j]) < 1e-7


def test_cross_entropy_sum_reduction():
    logits = np.array([[0.0, 0.0]])
    ce = gn.losses.CrossEntropy(reduction="sum")
    np.testing.assert_allclose(ce(np.repeat(logits, 3, 0), np.array([0, 1, 0])), 3 * np.log(2))


@pytest.mark.parametrize("labels, err, match", [
    (np.array([0, 3]), ValueError, r"labels must lie in \[0, 3\).*from 0 to 3"),
    (np.array([-1, 0]), ValueError, r"from -1 to 0"),
    (np.array([0.0, 1.0]), TypeError, "integer array of class indices"),
    (np.array([[0], [1]]), ValueError, r"shape \(2,\)"),
    (np.array([0, 1, 2]), ValueError, r"shape \(2,\)"),
])
def test_cross_entropy_bad_labels(labels, err, match):
    with pytest.raises(err, match=match):
        gn.losses.CrossEntropy()(np.zeros((2, 3), dtype=np.float32) + 0.1, labels)


def test_mse_hand_computed_and_gradient():
    out = np.array([[1.0, 2.0], [3.0, 5.0]])
    tgt = np.array([[1.0, 0.0], [0.0, 1.0]])
    mse = gn.losses.MSE()
    np.testing.assert_allclose(mse(out, tgt), (0 + 4 + 9 + 16) / 4)
    np.testing.assert_allclose(mse.backward(), 2 * (out - tgt) / 4)
    with pytest.raises(ValueError, match="shape"):
        mse(out, tgt[:1])


@pytest.mark.oracle
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nll_loss_matches_torch_and_composes_with_log_softmax(rng, reduction):
    import torch
    import gpunet.functional as F

    z = rng.standard_normal((6, 5))
    y = rng.integers(0, 5, 6)
    logp = F.log_softmax(z, dim=1)
    nll = gn.losses.NLLLoss(reduction=reduction)
    value = nll(logp, y)
    t = torch.tensor(logp, requires_grad=True)
    ref = torch.nn.functional.nll_loss(t, torch.tensor(y), reduction=reduction)
    ref.backward()
    np.testing.assert_allclose(value, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(nll.backward(), t.grad.numpy(), rtol=1e-12)
    # NLL of log_softmax(z) is the cross-entropy of z, as in PyTorch
    np.testing.assert_allclose(value, gn.losses.CrossEntropy(reduction=reduction)(z, y), rtol=1e-12)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        nll(logp, np.array([0, 1, 2, 3, 4, 5]))
    assert isinstance(gn.losses.get("nll_loss"), gn.losses.NLLLoss)


# ---------------------------------------------------------------- weights, smoothing, BCE, Huber (PyTorch as the oracle)
def _torch_check(ours, ref_fn, x, target, rtol=1e-12):
    """Our value and gradient against torch's for the same float64 inputs."""
    import torch

    t = torch.tensor(x, requires_grad=True)
    ref = ref_fn(t, torch.tensor(target))
    ref.backward()
    np.testing.assert_allclose(ours(x, target), ref.item(), rtol=rtol, atol=1e-15)
    np.testing.assert_allclose(ours.backward(), t.grad.numpy(), rtol=rtol, atol=1e-15)


@pytest.mark.oracle
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_cross_entropy_weights_and_label_smoothing_match_torch(rng, reduction, weighted, eps):
    import torch

    z = rng.standard_normal((7, 4)) * 3
    y = rng.integers(0, 4, 7)
    w = rng.uniform(0.2, 3.0, 4) if weighted else None
    ours = gn.losses.CrossEntropy(reduction=reduction, weight=w, label_smoothing=eps)
    tw = None if w is None else torch.tensor(w)
    _torch_check(ours, lambda t, ty: torch.nn.functional.cross_entropy(t, ty, weight=tw, reduction=reduction,
                                                                       label_smoothing=eps), z, y)
    assert float(ours.forward_trusted(z, y)) == pytest.approx(float(ours(z, y)), rel=1e-14)


@pytest.mark.oracle
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nll_loss_class_weights_match_torch(rng, reduction):
    import torch

    logp = np.log(rng.dirichlet(np.ones(5), size=6))
    y = rng.integers(0, 5, 6)
    w = rng.uniform(0.1, 2.0, 5)
    _torch_check(gn.losses.NLLLoss(reduction=reduction, weight=w),
                 lambda t, ty: torch.nn.functional.nll_loss(t, ty, weight=torch.tensor(w), reduction=reduction), logp, y)


@pytest.mark.oracle
@pytest.mark.parametrize("pos_weight", [None, 2.5, "per_class"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_matches_torch_and_is_stable(rng, pos_weight, reduction):
    import torch

    x = rng.standard_normal((6, 3)) * 4
    x[0, :] = [800.0, -800.0, 0.0]  # exp(800) overflows: the stable form must not
    y = rng.random((6, 3))
    y[1] = [0.0, 1.0, 1.0]
    pw = rng.uniform(0.5, 3, 3) if pos_weight == "per_class" else pos_weight
    ours = gn.losses.BCEWithLogits(reduction=reduction, pos_weight=pw)
    tpw = None if pw is None else torch.tensor(np.broadcast_to(np.asarray(pw, np.float64), (3,)).copy())
    _torch_check(ours, lambda t, ty: torch.nn.functional.binary_cross_entropy_with_logits(
        t, ty, pos_weight=tpw, reduction=reduction), x, y)
    assert np.isfinite(float(ours(x, y))) and np.isfinite(ours.backward()).all()


@pytest.mark.oracle
@pytest.mark.parametrize("kind,param", [("huber", 1.0), ("huber", 0.3), ("smooth_l1", 1.0), ("smooth_l1", 0.25)])
def test_huber_and_smooth_l1_match_torch(rng, kind, param):
    import torch

    out = rng.standard_normal((5, 4)) * 2
    tgt = rng.standard_normal((5, 4))
    if kind == "huber":
        ours, ref = gn.losses.Huber(delta=param), lambda t, ty: torch.nn.functional.huber_loss(t, ty, delta=param)
    else:
        ours, ref = gn.losses.SmoothL1(beta=param), lambda t, ty: torch.nn.functional.smooth_l1_loss(t, ty, beta=param)
    _torch_check(ours, ref, out, tgt)


def test_new_losses_refuse_bad_arguments():
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        gn.losses.CrossEntropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="weight must be a 1-D array"):
        gn.losses.CrossEntropy(weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="weight has 2 values for 3 classes"):
        gn.losses.CrossEntropy(weight=[1.0, 2.0])(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="delta must be a positive number"):
        gn.losses.Huber(delta=0)
    with pytest.raises(ValueError, match="beta must be a positive number"):
        gn.losses.SmoothL1(beta=-1)
    with pytest.raises(ValueError, match="output shape"):
        gn.losses.BCEWithLogits()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="bce_with_logits"):
        gn.losses.get("binary_crossentropy")
    assert isinstance(gn.losses.get("smooth_l1"), gn.losses.SmoothL1)
