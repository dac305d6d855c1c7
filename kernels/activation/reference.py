"""Element-wise activations, NumPy reference (float64-capable): the specification of every tier.

    relu:        y = max(x, 0)                       relu_backward:     dx = dy · [y > 0]
    add_relu:    y = max(a + b, 0)  (a residual sum and its ReLU: relu_backward is its backward)
    leaky_relu:  y = max(x, 0) + α·min(x, 0)         leaky_backward:    dx = dy · ((1 − α) + α  if y > 0  else  α)
    tanh:        y = tanh(x)                         tanh_backward:     dx = dy · (1 − y²)
    sigmoid:     y = 1/(1 + e) if x ≥ 0 else e/(1 + e),  e = exp(−|x|)    sigmoid_backward:  dx = dy · y · (1 − y)

max and min are ``numpy.maximum``/``minimum``: a NaN input stays NaN and −0 gives +0. Every
backward reads the forward's output y (for LeakyReLU with α ≥ 0, y > 0 exactly where x > 0), and
evaluates left to right in the array's dtype, so that a tier doing the same IEEE operations in
the same order gives the same bits. Every function writes into the arrays it is given.
"""
from __future__ import annotations

from ..common.xp import array_module as _xp


def relu(x, y):
    _xp(x).maximum(x, 0, out=y)


def add_relu(a, b, y):
    xp = _xp(a)
    xp.add(a, b, out=y)
    xp.maximum(y, 0, out=y)


def relu_backward(dy, y, dx):
    _xp(dy).multiply(dy, y > 0, out=dx)  # inf · 0 -> NaN where the unit is off: kept, not hidden


def leaky_relu(x, y, slope):
    xp = _xp(x)
    y[...] = xp.maximum(x, 0) + x.dtype.type(slope) * xp.minimum(x, 0)


def leaky_relu_backward(dy, y, dx, slope):
    a = dy.dtype.type(slope)
    _xp(dy).multiply(dy, (y > 0) * (1 - a) + a, out=dx)


def tanh(x, y):
    _xp(x).tanh(x, out=y)


def tanh_backward(dy, y, dx):
    dx[...] = dy * (1 - y * y)


def sigmoid(x, y):
    xp = _xp(x)
    e = xp.exp(-xp.abs(x))
    y[...] = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dy, y, dx):
    dx[...] = dy * y * (1 - y)
