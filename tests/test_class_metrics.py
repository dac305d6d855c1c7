"""Precision, recall and F1: scikit-learn's formulas (zero_division=0) written out here, per batch
and accumulated over a Trainer's pass."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import metrics


def _reference(pred, true, c, kind, average, pos_label=1):
    """scikit-learn's precision/recall/f1 for single-label data, from the confusion counts."""
    tp = np.array([np.sum((pred == k) & (true == k)) for k in range(c)], float)
    pc = np.array([np.sum(pred == k) for k in range(c)], float)
    tc = np.array([np.sum(true == k) for k in range(c)], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = {"precision": np.where(pc > 0, tp / pc, 0.0), "recall": np.where(tc > 0, tp / tc, 0.0),
               "f1": np.where(pc + tc > 0, 2 * tp / (pc + tc), 0.0)}[kind]
    if average == "micro":
        return tp.sum() / len(true)
    if average == "binary":
        return per[pos_label]
    if average == "weighted":
        return (per * tc).sum() / tc.sum()
    labels = sorted(set(true) | set(pred))
    return per[labels].mean()


@pytest.mark.parametrize("kind", ["precision", "recall", "f1"])
@pytest.mark.parametrize("average", ["macro", "weighted", "micro", "binary"])
def test_per_batch_values_match_the_formulas(rng, kind, average):
    c = 2 if average == "binary" else 5
    z = rng.standard_normal((40, c))
    z[:, c - 1] -= 5  # the last class is rarely predicted: zero divisions happen
    y = rng.integers(0, c - 1 if c > 2 else c, 40)  # ... and the last class never labelled (multi-class)
    fn = {"precision": metrics.precision, "recall": metrics.recall, "f1": metrics.f1_score}[kind]
    got = fn(z, y, average=average)
    assert got == pytest.approx(_reference(z.argmax(1), y, c, kind, average), rel=1e-12)


def test_a_trainer_pass_accumulates_counts_not_batch_means(rng):
    x = rng.standard_normal((203, 4)).astype(np.float32)
    y = (x[:, 0] > 0.3).astype(np.int64) + (x[:, 1] > 1.0)
    model = gn.Sequential(gn.Linear(4, 3))
    trainer = gn.train.Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.0),
                               metrics=["f1", metrics.Precision("weighted"), "recall", "accuracy"])
    logs = trainer.evaluate(x, y, batch_size=16)  # 13 batches, the last of 11
    pred = np.asarray(model(x)).argmax(1)
    assert logs["f1"] == pytest.approx(_reference(pred, y, 3, "f1", "macro"), rel=1e-9)
    assert logs["precision_weighted"] == pytest.approx(_reference(pred, y, 3, "precision", "weighted"), rel=1e-9)
    assert logs["recall"] == pytest.approx(_reference(pred, y, 3, "recall", "macro"), rel=1e-9)
    assert logs["accuracy"] == pytest.approx(np.mean(pred == y), rel=1e-9)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="average must be"):
        metrics.F1("samples")
    with pytest.raises(ValueError, match="pos_label 3 is not one of the 2 classes"):
        metrics.precision(np.zeros((4, 2)), np.zeros(4, np.int64), average="binary", pos_label=3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        metrics.recall(np.zeros((2, 2)), np.array([0, 2]))
    assert isinstance(metrics.get("f1"), metrics.F1) and metrics.get("recall").name == "recall"
