"""Metrics. Each returns a per-batch *sum* as a 0-d array on the outputs' device, so the Trainer
can accumulate it without a host synchronization and divide by the number of examples once at
the end of an epoch; the plain functions (``accuracy`` ...) return the mean as a float.

| name | per example |
| --- | --- |
| accuracy (acc) | [argmax_c z_c = y] |
| top5_accuracy (top_k_accuracy(k)) | [y among the k largest z_c] |
| mae | mean_j |z_j − t_j| |
| mse | mean_j (z_j − t_j)² |
"""
from __future__ import annotations

import numpy as np

from . import backend

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "MeanAbsoluteError", "MeanSquaredError", "get",
           "accuracy", "top_k_accuracy", "confusion_matrix"]


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


_REGISTRY = {
    "accuracy": Accuracy, "acc": Accuracy,
    "top5_accuracy": lambda: TopKAccuracy(5), "top_5_accuracy": lambda: TopKAccuracy(5),
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
}


def get(spec) -> Metric:
    """A Metric from a name ("accuracy", "top5_accuracy", "mae", "mse") or a Metric instance."""
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


def confusion_matrix(outputs, targets, num_classes: int | None = None) -> np.ndarray:
    """Host int64 matrix M with M[true, predicted] = count."""
    _check_class_outputs("confusion_matrix", outputs, targets)
    pred = backend.to_numpy(outputs.argmax(axis=1)).astype(np.int64)
    true = backend.to_numpy(targets).astype(np.int64)
    c = int(num_classes or outputs.shape[1])
    return np.bincount(true * c + pred, minlength=c * c).reshape(c, c)
