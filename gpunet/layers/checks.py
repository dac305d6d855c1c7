"""Input validation shared by layers: clear errors that name the layer and what it expected."""
from __future__ import annotations

import numpy as np

from .. import backend


def check_input(layer, x, ndim=None, trailing=None, dtype=None, min_ndim=None):
    """Check ``x``'s type, floating dtype and shape for ``layer``; return it (maybe cast).

    ``ndim``: exact number of dimensions (batch included); ``trailing``: the expected sizes of
    the last axes (None for any). A floating input of another precision than the layer's is cast;
    an integer or boolean input is an error (scale images to floats first).
    """
    on_cpu = isinstance(x, np.ndarray)
    if not on_cpu and not backend.is_gpu_array(x):
        raise TypeError(f"{layer.name}: expected a NumPy or CuPy array, got {backend.describe_non_array(x)}")
    if x.dtype.kind != "f":
        raise TypeError(
            f"{layer.name}: expected a floating-point input, got dtype {x.dtype} "
            "(scale integer data first, e.g. gpunet.data.to_unit)"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{layer.name}: expected a {ndim}-D input, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{layer.name}: expected at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if trailing is not None:
        for g, want in zip(x.shape[x.ndim - len(trailing):], trailing):
            if want is not None and g != want:
                raise ValueError(
                    f"{layer.name}: expected input of shape (N, {', '.join('*' if t is None else str(t) for t in trailing)}), "
                    f"got {tuple(x.shape)}"
                )
    own = layer._own_array()
    if own is not None and isinstance(own, np.ndarray) != on_cpu:
        layer_device = backend.device_of(own)
        raise ValueError(
            f"{layer.name}: input is on the {backend.device_of(x)}, the layer's parameters are on the "
            f"{layer_device}; move one with gpunet.to_device(x, {layer_device!r}) or model.to(...)"
        )
    if dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    return x


def check_dy(layer, dy, expected):
    """Check the gradient handed to ``layer.backward``: an array of ``expected`` shape (the
    forward's output shape; None when no forward has run)."""
    if expected is None:
        raise RuntimeError(f"{layer.name}: backward called before forward")
    if not hasattr(dy, "shape"):
        raise TypeError(f"{layer.name}.backward: expected dy as an array, got {type(dy).__name__}")
    if tuple(dy.shape) != tuple(expected):
        raise ValueError(f"{layer.name}.backward: dy has shape {tuple(dy.shape)}, expected "
                         f"{tuple(expected)} (the shape of the forward's output)")
