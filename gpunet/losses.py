"""Losses. ``loss(output, target)`` returns a 0-d array on the output's device; ``backward()``
returns the gradient with respect to the output. Reduction is the mean, as in PyTorch.

``loss(output, target)`` checks its arguments; ``loss.forward_trusted(output, target)`` is the
same computation for a caller that has checked them (the Trainer checks its data set once per
``fit``/``evaluate``), with no host synchronization."""
from __future__ import annotations

import numpy as np

from . import backend


class Loss:
    def __call__(self, output, target):
        return self.forward(output, target)

    def forward_trusted(self, output, target):
        """``forward`` without the checks the caller has made (by default, ``forward`` itself)."""
        return self.forward(output, target)

    def _saved(self, name: str):
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before a forward pass: "
                               f"compute the loss first, value = loss(output, target)")
        return value

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """Softmax cross-entropy from logits, with integer class labels.

    L = −(1/N) Σ_n log softmax(z_n)[y_n], computed as logsumexp(z_n) − z_n[y_n] with the row
    maximum subtracted first (stable for any logits).  ∂L/∂z = (softmax(z) − onehot(y)) / N.

    ``check_labels`` (default True) verifies that labels lie in [0, C) and raises otherwise; on
    the GPU that costs a host synchronization per call. With ``check_labels=False`` nothing is
    read on the host, and a label outside [0, C) makes its row's loss and gradient NaN (never a
    wrapped index into another class), which the optimizer's non-finite guard and the Trainer
    report. The Trainer checks a data set's labels once, before training on it, and calls
    ``forward_trusted``, which skips both.
    """

    _probs = None

    def __init__(self, reduction: str = "mean", check_labels: bool = True):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"CrossEntropy: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self.check_labels = check_labels

    def _validate(self, logits, y):
        if logits.ndim != 2:
            raise ValueError(f"CrossEntropy: expected logits of shape (N, C), got {tuple(logits.shape)}")
        if not np.issubdtype(logits.dtype, np.floating):
            raise TypeError(f"CrossEntropy: logits must be floating point, got {logits.dtype}")
        if not hasattr(y, "dtype") or not np.issubdtype(y.dtype, np.integer):
            got = getattr(y, "dtype", type(y).__name__)
            raise TypeError(f"CrossEntropy: labels must be an integer array of class indices, got {got}")
        if y.shape != (logits.shape[0],):
            raise ValueError(
                f"CrossEntropy: labels must have shape ({logits.shape[0]},) to match logits "
                f"{tuple(logits.shape)}, got {tuple(y.shape)}"
            )
        if backend.device_of(y) != backend.device_of(logits):
            raise ValueError(
                f"CrossEntropy: labels are on the {backend.device_of(y)}, logits on the {backend.device_of(logits)}"
            )
        if self.check_labels and y.size:
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= logits.shape[1]:
                raise ValueError(
                    f"CrossEntropy: labels must lie in [0, {logits.shape[1]}) for {logits.shape[1]} classes, "
                    f"got values from {lo} to {hi}"
                )

    def forward(self, logits, y):
        self._validate(logits, y)
        return self._compute(logits, y, guard=not self.check_labels)

    def forward_trusted(self, logits, y):
        """The loss of logits and labels the caller has checked (labels in range)."""
        if type(self).forward is not CrossEntropy.forward:  # a subclass computes its own loss
            return self.forward(logits, y)
        return self._compute(logits, y, guard=False)

    def _compute(self, logits, y, guard: bool):
        xp = backend.get_array_module(logits)
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        rows = xp.arange(n)
        bad = None
        if guard:  # out-of-range labels: NaN, on the device
            bad = (y < 0) | (y >= logits.shape[1])
            y = xp.where(bad, 0, y)
        nll = xp.log(s[:, 0]) - shifted[rows, y]
        if bad is not None:
            nll = xp.where(bad, xp.nan, nll)
        self._probs, self._y, self._bad = e / s, y, bad
        total = nll.sum()
        return total / n if self.reduction == "mean" else total

    def backward(self):
        g = self._saved("_probs").copy()
        n = g.shape[0]
        xp = backend.get_array_module(g)
        g[xp.arange(n), self._y] -= 1
        if self.reduction == "mean":
            g /= n
        if self._bad is not None:
            g = xp.where(self._bad[:, None], xp.nan, g).astype(g.dtype, copy=False)
        return g


class NLLLoss(CrossEntropy):
    """Negative log-likelihood of log-probabilities (a model ending in ``log_softmax``), as
    PyTorch's ``F.nll_loss``: L = −(1/N) Σ_n z_n[y_n];  ∂L/∂z = −onehot(y)/N. Labels are checked
    as ``CrossEntropy`` checks them."""

    def _compute(self, logp, y, guard: bool):
        xp = backend.get_array_module(logp)
        n = logp.shape[0]
        bad = None
        if guard:
            bad = (y < 0) | (y >= logp.shape[1])
            y = xp.where(bad, 0, y)
        nll = -logp[xp.arange(n), y]
        if bad is not None:
            nll = xp.where(bad, xp.nan, nll)
        self._probs, self._y, self._bad = xp.zeros_like(logp), y, bad  # backward: −onehot(y)
        total = nll.sum()
        return total / n if self.reduction == "mean" else total


class MSE(Loss):
    """L = (1/M) Σ (output − target)² over all M elements;  ∂L/∂output = 2(output − target)/M."""

    _diff = None  # output − target, kept for backward

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"MSE: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def forward(self, output, target):
        if tuple(output.shape) != tuple(target.shape):
            raise ValueError(f"MSE: output shape {tuple(output.shape)} and target shape {tuple(target.shape)} differ")
        if not np.issubdtype(target.dtype, np.floating):
            raise TypeError(f"MSE: target must be floating point, got {target.dtype}")
        self._diff = output - target.astype(output.dtype, copy=False)
        total = (self._diff * self._diff).sum()
        return total / self._diff.size if self.reduction == "mean" else total

    def backward(self):
        d = self._saved("_diff")
        g = 2 * d
        return g / d.size if self.reduction == "mean" else g


_NAMES = {"cross_entropy": CrossEntropy, "crossentropy": CrossEntropy, "sparse_categorical_crossentropy": CrossEntropy,
          "nll_loss": NLLLoss, "nll": NLLLoss, "mse": MSE, "mean_squared_error": MSE}


def get(spec) -> Loss:
    """A loss from a name ("cross_entropy", Keras's "sparse_categorical_crossentropy", "nll_loss",
    "mse", "mean_squared_error") or a loss instance (returned as it is). gpunet's cross-entropy takes
    logits and integer labels: Keras's ``from_logits=True`` with class indices."""
    if isinstance(spec, str):
        key = spec.lower()
        if key in _NAMES:
            return _NAMES[key]()
        if key in ("categorical_crossentropy", "binary_crossentropy"):
            raise ValueError(f"loss {spec!r}: gpunet's cross-entropy takes integer class labels, not one-hot "
                             "targets; pass 'sparse_categorical_crossentropy' (or 'cross_entropy') with y as class "
                             "indices (y.argmax(axis=1) for one-hot rows)")
        raise ValueError(f"unknown loss {spec!r}; expected a gpunet loss instance or one of {sorted(_NAMES)}")
    if isinstance(spec, type):
        raise TypeError(f"expected a loss instance, got the class {spec.__name__} (pass {spec.__name__}())")
    if not (callable(spec) and callable(getattr(spec, "backward", None))):
        raise TypeError(f"expected a loss instance with a backward(), such as gpunet.losses.CrossEntropy(), or a "
                        f"loss name, got a {type(spec).__name__}")
    return spec
