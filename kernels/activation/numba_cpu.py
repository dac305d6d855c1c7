"""Element-wise activations on the CPU: one Numba pass each, parallel on large arrays.

Same formulas, operations and order as ``reference`` (see there), so the results are the same
bits: a branch-free select and the IEEE +, −, ·, / in the array's dtype. The two transcendental
forwards keep NumPy's own SIMD ``tanh`` and ``exp`` (Numba's libm calls are slower and may differ
in the last bit), written straight into the output: tanh is one NumPy pass, sigmoid three NumPy
passes in place (|x|, −, exp) and one Numba pass. Arrays below ``PARALLEL_MIN`` elements run the
reference's NumPy expressions instead: there a Numba call's dispatch and the thread pool's
wake-up cost more than the pass (a 32×128 ReLU's forward and backward took 30 µs longer per
step through Numba), and the bits are the same.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..common.jit import njit
from . import reference

PARALLEL_MIN = 1 << 16
_kernel = njit(parallel=True, fastmath=False, cache=True)


@_kernel
def _relu(x, y, zero):
    for i in prange(x.size):
        v = x[i]
        y[i] = zero if v <= 0 else v


@_kernel
def _add_relu(a, b, y, zero):
    for i in prange(a.size):
        v = a[i] + b[i]
        y[i] = zero if v <= 0 else v


@_kernel
def _relu_backward(dy, y, dx, one, zero):
    for i in prange(dy.size):
        dx[i] = dy[i] * (one if y[i] > 0 else zero)


@_kernel
def _leaky(x, y, a, zero):
    for i in prange(x.size):
        v = x[i]
        hi = zero if v <= 0 else v
        lo = zero if v >= 0 else v
        y[i] = hi + a * lo


@_kernel
def _leaky_backward(dy, y, dx, pos, a):
    for i in prange(dy.size):
        dx[i] = dy[i] * (pos if y[i] > 0 else a)


@_kernel
def _tanh_backward(dy, y, dx, one):
    for i in prange(dy.size):
        v = y[i]
        dx[i] = dy[i] * (one - v * v)


@_kernel
def _sigmoid_finish(x, y, one):  # y holds e = exp(-|x|) on entry
    for i in prange(x.size):
        e = y[i]
        d = one + e
        y[i] = one / d if x[i] >= 0 else e / d


@_kernel
def _sigmoid_backward(dy, y, dx, one):
    for i in prange(dy.size):
        v = y[i]
        dx[i] = dy[i] * v * (one - v)


def _flat(*arrays):
    return tuple(a.reshape(-1) for a in arrays)


def relu(x, y):
    if x.size < PARALLEL_MIN:
        return reference.relu(x, y)
    _relu(*_flat(x, y), x.dtype.type(0))


def add_relu(a, b, y):
    if a.size < PARALLEL_MIN:
        return reference.add_relu(a, b, y)
    _add_relu(*_flat(a, b, y), a.dtype.type(0))


def relu_backward(dy, y, dx):
    if dy.size < PARALLEL_MIN:
        return reference.relu_backward(dy, y, dx)
    t = dy.dtype.type
    _relu_backward(*_flat(dy, y, dx), t(1), t(0))


def leaky_relu(x, y, slope):
    if x.size < PARALLEL_MIN:
        return reference.leaky_relu(x, y, slope)
    t = x.dtype.type
    _leaky(*_flat(x, y), t(slope), t(0))


def leaky_relu_backward(dy, y, dx, slope):
    if dy.size < PARALLEL_MIN:
        return reference.leaky_relu_backward(dy, y, dx, slope)
    t = dy.dtype.type
    a = t(slope)
    _leaky_backward(*_flat(dy, y, dx), (t(1) - a) + a, a)


def tanh(x, y):
    np.tanh(x, out=y)


def tanh_backward(dy, y, dx):
    if dy.size < PARALLEL_MIN:
        return reference.tanh_backward(dy, y, dx)
    _tanh_backward(*_flat(dy, y, dx), dy.dtype.type(1))


def sigmoid(x, y):
    if x.size < PARALLEL_MIN:
        return reference.sigmoid(x, y)
    np.abs(x, out=y)
    np.negative(y, out=y)
    np.exp(y, out=y)
    _sigmoid_finish(*_flat(x, y), x.dtype.type(1))


def sigmoid_backward(dy, y, dx):
    if dy.size < PARALLEL_MIN:
        return reference.sigmoid_backward(dy, y, dx)
    _sigmoid_backward(*_flat(dy, y, dx), dy.dtype.type(1))
