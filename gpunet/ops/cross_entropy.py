"""Softmax cross-entropy from logits with class labels as one kernel op: the loss and its
gradient in one pass over the logits (formulas: kernels/cross_entropy/reference.py).

    loss, grad = cross_entropy(z, y, label_smoothing=ε, reduction="mean")

``loss`` is the mean (or the sum) of −log softmax(z_n)[y_n], smoothed by ε, as a 0-d value on z's
device; ``grad`` = ∂loss/∂z, a new array like z. A label outside [0, C) gives NaN (its row's
gradient and the loss), never an index into another class. Nothing is read back to the host.
``cross_entropy`` checks its arguments; ``forward`` is the same op for a caller that has
(``gpunet.losses.CrossEntropy``, whose class weights and float16 logits take another path).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .registry import register

OP = register("cross_entropy")
DTYPES = (np.float32, np.float64)


def cross_entropy(z, y, label_smoothing: float = 0.0, reduction: str = "mean", *, tier: str | None = None):
    """(loss, ∂loss/∂z) of logits z (N, C) and integer labels y (N,) on one device."""
    if getattr(z, "ndim", None) != 2 or z.dtype not in DTYPES:
        raise TypeError(f"cross_entropy: z must be a float32 or float64 array of logits (N, C), got "
                        f"{getattr(z, 'dtype', type(z).__name__)} of shape {getattr(z, 'shape', None)}")
    if not hasattr(y, "dtype") or not np.issubdtype(y.dtype, np.integer) or y.shape != (z.shape[0],):
        raise TypeError(f"cross_entropy: y must be an integer array of {z.shape[0]} class labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)} of shape {getattr(y, 'shape', None)}")
    if backend.device_of(y) != backend.device_of(z):
        raise ValueError(f"cross_entropy: labels are on the {backend.device_of(y)}, logits on the "
                         f"{backend.device_of(z)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    return forward(z, y, float(label_smoothing), z.shape[0] if reduction == "mean" else 1, tier=tier)


def forward(z, y, eps: float, norm, tier: str | None = None):
    """``cross_entropy`` of checked arguments, with the divisor W given: the loss
    (1/W) Σ_n ℓ_n and its gradient."""
    xp = backend.get_array_module(z)
    if not z.flags.c_contiguous:
        z = xp.ascontiguousarray(z)
    if y.dtype != np.int64 or not y.flags.c_contiguous:
        y = xp.ascontiguousarray(y, dtype=np.int64)
    loss = xp.empty(1, dtype=z.dtype)
    grad = xp.empty(z.shape, dtype=z.dtype)
    OP.select(z, y, tier=tier).forward(z, y, eps, norm, loss, grad)
    return loss[0], grad
