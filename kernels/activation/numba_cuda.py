"""Element-wise activations with numba.cuda: one thread per element in a grid-stride loop, the
formulas of ``reference`` (tanh and exp from CUDA's math library). Under NUMBA_ENABLE_CUDASIM=1
the kernels take NumPy arrays; on a GPU, CuPy arrays."""
from __future__ import annotations

import math

import numpy as np

from ..common.numba_cuda import cuda

THREADS = 128


def _blocks(n: int) -> int:
    return max(1, min((n + THREADS - 1) // THREADS, 65535))


@cuda.jit
def _relu(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = 0 if v <= 0 else v


@cuda.jit
def _add_relu(a, b, y):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        v = a[i] + b[i]
        y[i] = 0 if v <= 0 else v


@cuda.jit
def _relu_backward(dy, y, dx):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = dy[i] * (1 if y[i] > 0 else 0)


@cuda.jit
def _leaky(x, y, a):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        hi = 0 if v <= 0 else v
        lo = 0 if v >= 0 else v
        y[i] = hi + a * lo


@cuda.jit
def _leaky_backward(dy, y, dx, pos, a):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        dx[i] = dy[i] * (pos if y[i] > 0 else a)


@cuda.jit
def _tanh(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = math.tanh(x[i])


@cuda.jit
def _tanh_backward(dy, y, dx):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        v = y[i]
        dx[i] = dy[i] * (1 - v * v)


@cuda.jit
def _sigmoid(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        e = math.exp(-abs(v))
        y[i] = 1 / (1 + e) if v >= 0 else e / (1 + e)


@cuda.jit
def _sigmoid_backward(dy, y, dx):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        v = y[i]
        dx[i] = dy[i] * v * (1 - v)


def _launch(kernel, first, *args):
    flat = tuple(a if isinstance(a, np.generic) else a.reshape(-1) for a in args)
    kernel[_blocks(first.size), THREADS](*flat)


def relu(x, y):
    _launch(_relu, x, x, y)


def add_relu(a, b, y):
    _launch(_add_relu, a, a, b, y)


def relu_backward(dy, y, dx):
    _launch(_relu_backward, dy, dy, y, dx)


def leaky_relu(x, y, slope):
    _launch(_leaky, x, x, y, x.dtype.type(slope))


def leaky_relu_backward(dy, y, dx, slope):
    a = dy.dtype.type(slope)
    _launch(_leaky_backward, dy, dy, y, dx, (dy.dtype.type(1) - a) + a, a)


def tanh(x, y):
    _launch(_tanh, x, x, y)


def tanh_backward(dy, y, dx):
    _launch(_tanh_backward, dy, dy, y, dx)


def sigmoid(x, y):
    _launch(_sigmoid, x, x, y)


def sigmoid_backward(dy, y, dx):
    _launch(_sigmoid_backward, dy, dy, y, dx)
