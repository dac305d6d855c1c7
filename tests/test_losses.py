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
