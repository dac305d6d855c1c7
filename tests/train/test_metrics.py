"""Metrics: per-batch sums on the device, checked against NumPy."""
import numpy as np
import pytest

from gpunet import metrics as M


def test_accuracy_and_top_k(rng):
    z = rng.normal(size=(50, 6)).astype(np.float32)
    y = rng.integers(0, 6, 50)
    assert M.accuracy(z, y) == pytest.approx(np.mean(z.argmax(1) == y))
    assert M.Accuracy().batch_sum(z, y) == np.sum(z.argmax(1) == y)
    rank = (z > z[np.arange(50), y][:, None]).sum(1)
    for k in (1, 2, 5):
        assert M.top_k_accuracy(z, y, k) == pytest.approx(np.mean(rank < k))
    assert M.top_k_accuracy(z, y, 6) == 1.0
    assert M.get("top5_accuracy").name == "top5_accuracy"


def test_regression_metrics(rng):
    out = rng.normal(size=(20, 3)).astype(np.float32)
    t = rng.normal(size=(20, 3)).astype(np.float32)
    assert M.get("mae")(out, t) == pytest.approx(np.mean(np.abs(out - t)), rel=1e-6)
    assert M.get("mse")(out, t) == pytest.approx(np.mean((out - t) ** 2), rel=1e-6)


def test_confusion_matrix(rng):
    z = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40)
    cm = M.confusion_matrix(z, y)
    assert cm.sum() == 40 and np.trace(cm) == np.sum(z.argmax(1) == y)
    assert cm[y[0], z[0].argmax()] >= 1


def test_bad_metric_input():
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        M.get("acuracy")
    with pytest.raises(ValueError, match=r"expected outputs of shape \(N, C\)"):
        M.accuracy(np.zeros(5), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        M.TopKAccuracy(0)


def test_keep_and_total_agree_with_batch_sums(rng):
    """What the Trainer keeps per step and totals at a read-back equals the sum of batch sums."""
    z = [rng.normal(size=(n, 4)).astype(np.float32) for n in (16, 16, 5)]
    y = [rng.integers(0, 4, len(a)) for a in z]
    t = [rng.normal(size=a.shape).astype(np.float32) for a in z]
    for m, targets in ((M.Accuracy(), y), (M.TopKAccuracy(2), y), (M.MeanAbsoluteError(), t),
                       (M.MeanSquaredError(), t)):
        kept = [m.keep(a, b) for a, b in zip(z, targets)]
        expect = sum(float(m.batch_sum(a, b)) for a, b in zip(z, targets))
        assert float(m.total(kept)) == pytest.approx(expect, rel=1e-6), m
