"""Element-wise activations, CUDA C tier: activation.cu through cupy.RawModule, compiled once
per process; asynchronous launches on CuPy's current stream (device plumbing and the ``device``
test seam: kernels/common/cupy.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import THREADS, compiled, grid, sourced, suffix

source = sourced(Path(__file__).with_name("activation.cu"))
device = None  # None: the current GPU; tests may put a CPU emulator here


def _launch(name, first, *args):
    n = first.size
    if not n:
        return
    dev = device if device is not None else compiled(source)
    arrays = tuple(a for a in args if not isinstance(a, np.generic))
    scalars = tuple(a for a in args if isinstance(a, np.generic))
    dev.kernel(f"{name}_{suffix(first.dtype)}")((grid(dev, n),), (THREADS,), arrays + (np.int64(n),) + scalars)


def relu(x, y):
    _launch("relu", x, x, y)


def add_relu(a, b, y):
    _launch("add_relu", a, a, b, y)


def relu_backward(dy, y, dx):
    _launch("relu_backward", dy, dy, y, dx)


def leaky_relu(x, y, slope):
    _launch("leaky", x, x, y, x.dtype.type(slope))


def leaky_relu_backward(dy, y, dx, slope):
    a = dy.dtype.type(slope)
    _launch("leaky_backward", dy, dy, y, dx, (dy.dtype.type(1) - a) + a, a)


def tanh(x, y):
    _launch("tanh", x, x, y)


def tanh_backward(dy, y, dx):
    _launch("tanh_backward", dy, dy, y, dx)


def sigmoid(x, y):
    _launch("sigmoid", x, x, y)


def sigmoid_backward(dy, y, dx):
    _launch("sigmoid_backward", dy, dy, y, dx)
