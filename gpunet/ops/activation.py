"""Element-wise activations as kernel ops: ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid`` and their
backwards, each returning a new output array (see kernels/activation/reference.py for the formulas).

    y = relu(x)              dx = relu_backward(dy, y)
    y = add_relu(a, b)       (max(a + b, 0): a residual sum and its ReLU; relu_backward again)
    y = leaky_relu(x, α)     dx = leaky_relu_backward(dy, y, α)
    y = tanh(x)              dx = tanh_backward(dy, y)
    y = sigmoid(x)           dx = sigmoid_backward(dy, y)

Every backward reads the forward's output y. The layers in gpunet/layers/activations.py are the
public boundary and check their inputs; these functions only choose the tier (the registry's
``activation`` op) and allocate. float32 and float64 arrays run the op's tiers; other floating
dtypes (float16), or a dy whose dtype differs from y's, run the reference formulas, which follow
NumPy's type promotion, and so do NumPy arrays below ``SMALL`` elements (what the CPU tier runs
there too, reached without the dispatch).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..kernels.activation.numba_cpu import PARALLEL_MIN as SMALL
from . import registry
from .registry import register

OP = register("activation")
_FAST = (np.float32, np.float64)
# NumPy arrays below SMALL elements: the CPU tier computes the reference formulas itself, so they
# are called here directly


def _module(first, other, tier):
    if tier is None and ((type(first) is np.ndarray and first.size < SMALL and registry.mode() != "cupy")
                         or first.dtype not in _FAST or (other is not None and other.dtype != first.dtype)):
        return OP.module("reference")  # what the CPU tier would run (see its PARALLEL_MIN), without the dispatch
    return OP.select(first, other, tier=tier)


def _contiguous(a):
    return a if a.flags.c_contiguous else backend.get_array_module(a).ascontiguousarray(a)


def _forward(name, x, tier, *scalars):
    x = _contiguous(x)
    y = backend.get_array_module(x).empty_like(x)
    getattr(_module(x, None, tier), name)(x, y, *scalars)
    return y


def _backward(name, dy, y, tier, *scalars):
    dy, y = _contiguous(dy), _contiguous(y)
    xp = backend.get_array_module(dy)
    dx = xp.empty_like(dy) if dy.dtype == y.dtype else xp.empty(dy.shape, dtype=np.result_type(dy.dtype, y.dtype))
    getattr(_module(dy, y, tier), name)(dy, y, dx, *scalars)
    return dx


def relu(x, tier=None):
    """max(x, 0) (NaN kept, −0 → +0, as ``numpy.maximum``)."""
    return _forward("relu", x, tier)


def add_relu(a, b, tier=None):
    """max(a + b, 0) in one pass, for a and b of one shape (a residual block's sum and ReLU)."""
    a, b = _contiguous(a), _contiguous(b)
    y = backend.get_array_module(a).empty(a.shape, dtype=np.result_type(a.dtype, b.dtype))
    getattr(_module(a, b, tier), "add_relu")(a, b, y)
    return y


def relu_backward(dy, y, tier=None):
    """dy · [y > 0]."""
    return _backward("relu_backward", dy, y, tier)


def leaky_relu(x, slope: float, tier=None):
    """max(x, 0) + α·min(x, 0)."""
    return _forward("leaky_relu", x, tier, float(slope))


def leaky_relu_backward(dy, y, slope: float, tier=None):
    """dy · ((1 − α) + α where y > 0, else α)."""
    return _backward("leaky_relu_backward", dy, y, tier, float(slope))


def tanh(x, tier=None):
    """tanh(x)."""
    return _forward("tanh", x, tier)


def tanh_backward(dy, y, tier=None):
    """dy · (1 − y²)."""
    return _backward("tanh_backward", dy, y, tier)


def sigmoid(x, tier=None):
    """1/(1 + e^(−x)) without overflow."""
    return _forward("sigmoid", x, tier)


def sigmoid_backward(dy, y, tier=None):
    """dy · y · (1 − y)."""
    return _backward("sigmoid_backward", dy, y, tier)
