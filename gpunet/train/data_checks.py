"""Checks a data set once, before training on it: clear errors instead of failures deep inside a
layer (or, for labels, a check per batch that would cost a host synchronization each)."""
from __future__ import annotations

import math

import numpy as np

from .. import backend

__all__ = ["unpack", "training_data", "check_data"]


def unpack(data, who):
    if hasattr(data, "x") and hasattr(data, "y"):
        return data.x, data.y
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(f"{who}: expected an (x, y) pair or a gpunet Dataset, got {type(data).__name__}") from None
    return x, y


def training_data(x, y, who):
    """``fit(x, y)`` or ``fit((x, y))`` / ``fit(dataset)`` as one (x, y) pair or dataset."""
    if y is None:
        if backend.is_array(x):
            raise TypeError(f"{who}: got x without y; pass fit(x, y), an (x, y) pair or a gpunet Dataset")
        return x
    if isinstance(y, (tuple, list)) or (hasattr(y, "x") and hasattr(y, "y")):
        hint = ("; pass validation data as val=(x_val, y_val) or validation_data=(x_val, y_val)"
                if who.endswith("fit") else "")
        raise TypeError(f"{who}: the second positional argument is y, the targets of x, got "
                        f"{type(y).__name__}{hint}")
    if not backend.is_array(x):
        raise TypeError(f"{who}: with y given, x must be an array of samples, got {backend.describe_non_array(x)}")
    return x, y


def check_data(model, loss, x, y, who):
    """Validate once: array types, lengths, feature shape against the model, labels' dtype and
    range (then per-batch label checks can be switched off)."""
    for name, a in (("x", x), ("y", y)):
        if not backend.is_array(a):
            raise TypeError(f"{who}: {name} must be a NumPy or CuPy array, got {backend.describe_non_array(a)}")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{who}: x must have shape (N, features...) with N > 0, got {tuple(x.shape)}")
    if len(x) != len(y):
        raise ValueError(f"{who}: x has {len(x)} rows but y has {len(y)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{who}: x must be floating point, got {x.dtype} (scale it first, "
                        "e.g. gpunet.data.to_unit)")
    hint = model.input_shape_hint()
    if hint is not None and tuple(x.shape[1:]) != tuple(hint):
        raise ValueError(f"{who}: the model expects samples of shape {tuple(hint)} (x of shape "
                         f"(N, {', '.join(map(str, hint))})), got x of shape {tuple(x.shape)}")
    xp = backend.get_array_module(x)
    if not (math.isfinite(float(x.min())) and math.isfinite(float(x.max()))):  # NaN propagates
        bad = int(xp.count_nonzero(~xp.isfinite(x)))
        raise ValueError(f"{who}: x holds {bad} non-finite values (NaN or inf)")
    was_training = model.training
    model.eval()
    try:
        out = model(backend.to_device(x[:1], model.device, dtype=model.dtype))
    except Exception as exc:
        raise ValueError(f"{who}: a forward pass on one sample of shape {tuple(x.shape[1:])} failed: "
                         f"{exc}") from exc
    finally:
        model.train(was_training)
    if hasattr(loss, "check_labels"):  # class labels (cross-entropy)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"{who}: labels must be a 1-D integer array of class indices for "
                            f"{type(loss).__name__}, got dtype {y.dtype} and shape {tuple(y.shape)}")
        classes = out.shape[1] if out.ndim == 2 else None
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (classes is not None and hi >= classes):
            raise ValueError(f"{who}: labels must lie in [0, {classes}) for a model with {classes} "
                             f"outputs, got values from {lo} to {hi}")
    elif tuple(y.shape[1:]) != tuple(out.shape[1:]):
        raise ValueError(f"{who}: targets of shape {tuple(y.shape)} do not match the model's output "
                         f"shape (N, {', '.join(map(str, out.shape[1:]))})")
