"""Metrics. Each returns a per-batch *sum* as a 0-d array on the outputs' device, so the Trainer
can accumulate it without a host synchronization and divide by the number of examples once at
the end of an epoch; the plain functions (``accuracy`` ...) return the mean as a float.

| name | per example |
| --- | --- |
| accuracy (acc) | [argmax_c z_c = y] |
| top5_accuracy (top_k_accuracy(k)) | [y among the k largest z_c] |
| mae | mean_j |z_j − t_j| |
| mse | mean_j (z_j − t_j)² |

Precision, recall and F1 (``Precision``, ``Recall``, ``F1``; names "precision", "recall", "f1")
are not means over examples: they keep per-class counts over the whole pass — true positives
tp_c, predictions p_c and labels t_c of each class c, the prediction being argmax_c z_c — and
give precision_c = tp_c/p_c, recall_c = tp_c/t_c, F1_c = 2tp_c/(p_c + t_c) (0 where the
denominator is 0, as scikit-learn's ``zero_division=0``), averaged as scikit-learn's ``average``:
"macro" (default: the plain mean over the classes that occur among the labels or the
predictions), "weighted" (weights t_c), "micro" (Σtp/N: the accuracy, for one label per example)
or "binary" (class ``pos_label`` alone).
"""
from __future__ import annotations

import numpy as np

from . import backend

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "MeanAbsoluteError", "MeanSquaredError", "Precision", "Recall",
           "F1", "get", "accuracy", "top_k_accuracy", "precision", "recall", "f1_score", "confusion_matrix"]


class Metric:
    """``batch_sum(outputs, targets)`` → Σ over the batch of the per-example value (device 0-d).

    The Trainer calls ``keep(outputs, targets)`` once per step and keeps what it returns (on the
    device), then ``total(kept)`` at a read-back for the sum over those batches; by default
    ``keep`` is ``batch_sum`` and ``total`` adds the kept sums. A metric can keep something
    cheaper to compute per step and do the rest once per read-back (Accuracy keeps the
    predicted classes: one kernel per step instead of three).
    """

    name = "metric"

    def batch_sum(self, outputs, targets):
        raise NotImplementedError

    def keep(self, outputs, targets):
        return self.batch_sum(outputs, targets)

    def total(self, kept: list):
        xp = backend.get_array_module(kept[0])
        return xp.stack(kept).sum()

    def value(self, summed, n: float) -> float:
        """The metric from the float64 host sum of ``total``'s results over a pass of n examples:
        by default the mean, summed/n."""
        return float(summed[0] / n)

    def __call__(self, outputs, targets) -> float:
        """The batch mean as a float (reads back from the device)."""
        return float(self.batch_sum(outputs, targets)) / max(len(outputs), 1)

    def __repr__(self):
        return f"{type(self).__name__}()"


def _check_class_outputs(who, outputs, targets):
    if outputs.ndim != 2:
        raise ValueError(f"{who}: expected outputs of shape (N, C), got {tuple(outputs.shape)}")
    if targets.shape != (outputs.shape[0],):
        raise ValueError(f"{who}: expected labels of shape ({outputs.shape[0]},), got {tuple(targets.shape)}")


class Accuracy(Metric):
    """Fraction of examples whose largest output is the label."""

    name = "accuracy"

    def batch_sum(self, outputs, targets):
        _check_class_outputs("accuracy", outputs, targets)
        return (outputs.argmax(axis=1) == targets).sum()

    def keep(self, outputs, targets):
        _check_class_outputs("accuracy", outputs, targets)
        return outputs.argmax(axis=1), targets

    def total(self, kept):
        xp = backend.get_array_module(kept[0][0])
        pred = xp.concatenate([p for p, _ in kept])
        true = xp.concatenate([t for _, t in kept])
        return xp.count_nonzero(pred == true)


class TopKAccuracy(Metric):
    """Fraction of examples whose label is among the k largest outputs (ties counted in)."""

    def __init__(self, k: int = 5):
        if int(k) != k or k < 1:
            raise ValueError(f"TopKAccuracy: k must be a positive integer, got {k!r}")
        self.k = int(k)
        self.name = f"top{self.k}_accuracy"

    def batch_sum(self, outputs, targets):
        _check_class_outputs(self.name, outputs, targets)
        xp = backend.get_array_module(outputs)
        target_score = outputs[xp.arange(outputs.shape[0]), targets]
        # the label is in the top k when fewer than k outputs beat it
        beaten = (outputs > target_score[:, None]).sum(axis=1)
        return (beaten < self.k).sum()


class MeanAbsoluteError(Metric):
    name = "mae"

    def batch_sum(self, outputs, targets):
        d = abs(outputs - targets.astype(outputs.dtype, copy=False))
        return d.reshape(len(d), -1).mean(axis=1).sum()


class MeanSquaredError(Metric):
    name = "mse"

    def batch_sum(self, outputs, targets):
        d = outputs - targets.astype(outputs.dtype, copy=False)
        return (d * d).reshape(len(d), -1).mean(axis=1).sum()


class _ClassCounts(Metric):
    """Per-class counts (tp, predictions, labels) kept over a pass; see the module docstring."""

    _kind = ""

    def __init__(self, average: str = "macro", pos_label: int = 1):
        if average not in ("macro", "weighted", "micro", "binary"):
            raise ValueError(f"{type(self).__name__}: average must be 'macro', 'weighted', 'micro' or 'binary', "
                             f"got {average!r}")
        if isinstance(pos_label, bool) or int(pos_label) != pos_label or pos_label < 0:
            raise ValueError(f"{type(self).__name__}: pos_label must be a class index >= 0, got {pos_label!r}")
        self.average, self.pos_label = average, int(pos_label)
        self.name = self._kind if average == "macro" else f"{self._kind}_{average}"

    def keep(self, outputs, targets):
        _check_class_outputs(self.name, outputs, targets)
        if self.average == "binary" and self.pos_label >= outputs.shape[1]:
            raise ValueError(f"{self.name}: pos_label {self.pos_label} is not one of the {outputs.shape[1]} classes")
        return outputs.argmax(axis=1), targets, int(outputs.shape[1])

    def total(self, kept):
        xp = backend.get_array_module(kept[0][0])
        pred = xp.concatenate([p for p, _, _ in kept])
        true = xp.concatenate([t for _, t, _ in kept]).astype(pred.dtype, copy=False)
        c = kept[0][2]
        hit = true[pred == true]
        return xp.concatenate([xp.bincount(hit, minlength=c)[:c], xp.bincount(pred, minlength=c)[:c],
                               xp.bincount(true, minlength=c)[:c]])

    def batch_sum(self, outputs, targets):
        return self.total([self.keep(outputs, targets)])

    def __call__(self, outputs, targets) -> float:
        _check_class_outputs(self.name, outputs, targets)
        labels = backend.to_numpy(targets)
        if labels.size and (labels.min() < 0 or labels.max() >= outputs.shape[1]):
            raise ValueError(f"{self.name}: labels must lie in [0, {outputs.shape[1]}), got values from "
                             f"{labels.min()} to {labels.max()}")
        summed = np.asarray(backend.to_numpy(self.batch_sum(outputs, targets)), dtype=np.float64)
        return self.value(summed, float(len(targets)))

    @staticmethod
    def _ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    def _per_class(self, tp, pc, tc):
        raise NotImplementedError

    def value(self, summed, n):
        tp, pc, tc = np.split(np.asarray(summed, dtype=np.float64), 3)
        if self.average == "micro":
            return float(tp.sum() / n)
        per = self._per_class(tp, pc, tc)
        if self.average == "binary":
            return float(per[self.pos_label])
        if self.average == "weighted":
            return float((per * tc).sum() / tc.sum()) if tc.sum() else 0.0
        present = (pc + tc) > 0
        return float(per[present].mean()) if present.any() else 0.0

    def __repr__(self):
        return f"{type(self).__name__}(average={self.average!r})"


class Precision(_ClassCounts):
    """precision_c = tp_c / (predictions of c), averaged (see the module docstring)."""

    _kind = "precision"

    def _per_class(self, tp, pc, tc):
        return self._ratio(tp, pc)


class Recall(_ClassCounts):
    """recall_c = tp_c / (labels of c), averaged (see the module docstring)."""

    _kind = "recall"

    def _per_class(self, tp, pc, tc):
        return self._ratio(tp, tc)


class F1(_ClassCounts):
    """F1_c = 2 tp_c / (predictions of c + labels of c), the harmonic mean of precision_c and
    recall_c, averaged (see the module docstring)."""

    _kind = "f1"

    def _per_class(self, tp, pc, tc):
        return self._ratio(2 * tp, pc + tc)


_REGISTRY = {
    "accuracy": Accuracy, "acc": Accuracy,
    "top5_accuracy": lambda: TopKAccuracy(5), "top_5_accuracy": lambda: TopKAccuracy(5),
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "precision": Precision, "recall": Recall, "f1": F1, "f1_score": F1,
}


def get(spec) -> Metric:
    """A Metric from a name ("accuracy", "top5_accuracy", "mae", "mse", "precision", "recall", "f1")
    or a Metric instance."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str) and spec in _REGISTRY:
        return _REGISTRY[spec]()
    raise ValueError(f"unknown metric {spec!r}; expected a gpunet.metrics.Metric or one of "
                     f"{sorted(_REGISTRY)}")


def accuracy(outputs, targets) -> float:
    """Mean of [argmax z = y] over the batch."""
    return Accuracy()(outputs, targets)


def top_k_accuracy(outputs, targets, k: int = 5) -> float:
    return TopKAccuracy(k)(outputs, targets)


def precision(outputs, targets, average: str = "macro", pos_label: int = 1) -> float:
    return Precision(average, pos_label)(outputs, targets)


def recall(outputs, targets, average: str = "macro", pos_label: int = 1) -> float:
    return Recall(average, pos_label)(outputs, targets)


def f1_score(outputs, targets, average: str = "macro", pos_label: int = 1) -> float:
    return F1(average, pos_label)(outputs, targets)


def confusion_matrix(outputs, targets, num_classes: int | None = None) -> np.ndarray:
    """Host int64 matrix M with M[true, predicted] = count."""
    _check_class_outputs("confusion_matrix", outputs, targets)
    pred = backend.to_numpy(outputs.argmax(axis=1)).astype(np.int64)
    true = backend.to_numpy(targets).astype(np.int64)
    c = int(num_classes or outputs.shape[1])
    return np.bincount(true * c + pred, minlength=c * c).reshape(c, c)
