"""Functional ops for forward-only modules: ``import gpunet.functional as F``.

Each op works on plain arrays (it just computes) and on the recorded values of a module's
training forward (it also records its backward; see ``gpunet.layers.record``). The operators
``+ - * / @``, indexing and ``.reshape/.flatten/.sum/.mean/.T`` of a recorded value call these.

| op | y | backward |
| --- | --- | --- |
| add(a, b), sub(a, b) | a ± b (broadcasting) | dy, ±dy summed over broadcast axes |
| mul(a, b), div(a, b) | a·b, a/b | dy·b, dy·a;  dy/b, −dy·a/b² |
| matmul(a, b) | a @ b (2-D) | dy bᵀ, aᵀ dy |
| concat(xs, axis) | [x₁ … xₖ] along axis | dy split along axis |
| reshape, flatten, transpose, getitem | a view | dy put back in the input's shape |
| mean, sum | over axis | dy broadcast (÷ n for the mean) |
| relu, leaky_relu, tanh, sigmoid, softmax | as the layer of that name | the layer's backward |
| log_softmax(x, dim) | x − max − log Σ e^(x − max) | dy − softmax(x)·Σ dy |
| dropout(x, p) | as ``Dropout`` | the mask's |
| max_pool2d, avg_pool2d | as ``MaxPool2d``/``AvgPool2d`` | the layer's backward |
"""
from __future__ import annotations

import math

from . import backend
from .layers import record
from .layers.record import Recorded

__all__ = ["add", "sub", "mul", "div", "neg", "matmul", "transpose", "concat", "reshape", "flatten", "getitem",
           "mean", "sum", "relu", "leaky_relu", "tanh", "sigmoid", "softmax", "log_softmax", "dropout", "max_pool2d",
           "avg_pool2d"]


def _a(v):
    return v.array if type(v) is Recorded else v


def _unbroadcast(g, like):
    """g summed down to the shape of ``like`` (undoing NumPy broadcasting)."""
    shape = tuple(getattr(like, "shape", ()))
    if tuple(g.shape) == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


# ---------------------------------------------------------------------- arithmetic
def add(a, b):
    x, y = _a(a), _a(b)
    return record.op("add", x + y, (a, b), lambda dy, need: (
        _unbroadcast(dy, x) if need[0] else None, _unbroadcast(dy, y) if need[1] else None))


def sub(a, b):
    x, y = _a(a), _a(b)
    return record.op("sub", x - y, (a, b), lambda dy, need: (
        _unbroadcast(dy, x) if need[0] else None, _unbroadcast(-dy, y) if need[1] else None))


def mul(a, b):
    x, y = _a(a), _a(b)
    return record.op("mul", x * y, (a, b), lambda dy, need: (
        _unbroadcast(dy * y, x) if need[0] else None, _unbroadcast(dy * x, y) if need[1] else None))


def div(a, b):
    x, y = _a(a), _a(b)
    return record.op("div", x / y, (a, b), lambda dy, need: (
        _unbroadcast(dy / y, x) if need[0] else None, _unbroadcast(-dy * x / (y * y), y) if need[1] else None))


def neg(a):
    return record.op("neg", -_a(a), (a,), lambda dy, need: (-dy,))


def matmul(a, b):
    x, y = _a(a), _a(b)
    if getattr(x, "ndim", 0) != 2 or getattr(y, "ndim", 0) != 2:
        raise ValueError(f"gpunet.functional.matmul: expected two 2-D arrays, got shapes "
                         f"{tuple(getattr(x, 'shape', ()))} and {tuple(getattr(y, 'shape', ()))}")
    xp = backend.get_array_module(x)
    return record.op("matmul", xp.matmul(x, y), (a, b), lambda dy, need: (
        xp.matmul(dy, y.T) if need[0] else None, xp.matmul(x.T, dy) if need[1] else None))


# ---------------------------------------------------------------------- shapes
def reshape(a, shape):
    x = _a(a)
    return record.op("reshape", x.reshape(tuple(shape)), (a,), lambda dy, need: (dy.reshape(x.shape),))


def flatten(a, start_dim: int = 1):
    """Merge the axes from ``start_dim`` on (1 keeps the batch axis, as ``Flatten``)."""
    x = _a(a)
    start = int(start_dim) % max(x.ndim, 1)
    return reshape(a, tuple(x.shape[:start]) + (-1,))


def transpose(a, axes=None):
    x = _a(a)
    inverse = None if axes is None else tuple(sorted(range(len(axes)), key=lambda i: axes[i]))
    return record.op("transpose", x.transpose(axes), (a,), lambda dy, need: (dy.transpose(inverse),))


def getitem(a, index):
    """``a[index]`` for basic indexing (ints, slices, None, Ellipsis)."""
    parts = index if isinstance(index, tuple) else (index,)
    if not all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts):
        raise record.RecordError("gpunet.functional.getitem: only basic indexing (ints, slices, None, ...) is "
                                 f"recordable, got {index!r}")
    x = _a(a)

    def backward(dy, need):
        dx = backend.get_array_module(dy).zeros(x.shape, dtype=dy.dtype)
        dx[index] = dy
        return (dx,)

    return record.op("getitem", x[index], (a,), backward)


def concat(values, axis: int = 1):
    """Concatenate along ``axis``; backward hands each input its contiguous slice of dy (as ``Concat``)."""
    values = list(values)
    if not values:
        raise ValueError("gpunet.functional.concat: expected at least one array")
    arrays = [_a(v) for v in values]
    xp = backend.get_array_module(arrays[0])
    sizes = [x.shape[axis] for x in arrays]

    def backward(dy, need):
        out, start = [], 0
        index = [slice(None)] * dy.ndim
        for size, n in zip(sizes, need):
            index[axis] = slice(start, start + size)
            out.append(xp.ascontiguousarray(dy[tuple(index)]) if n else None)
            start += size
        return tuple(out)

    return record.op("concat", xp.concatenate(arrays, axis=axis), tuple(values), backward)


def _reduced(x, axis):
    if axis is None:
        return x.size
    axes = axis if isinstance(axis, tuple) else (axis,)
    return math.prod(x.shape[i] for i in axes)


def _expand(dy, x, axis, keepdims):
    if axis is not None and not keepdims:
        axes = sorted(a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
        for a in axes:
            dy = backend.get_array_module(dy).expand_dims(dy, a)
    return backend.get_array_module(dy).broadcast_to(dy, x.shape)


def sum(a, axis=None, keepdims: bool = False):  # noqa: A001 - the NumPy name
    x = _a(a)
    return record.op("sum", x.sum(axis=axis, keepdims=keepdims), (a,),
                     lambda dy, need: (_expand(dy, x, axis, keepdims).copy(),))


def mean(a, axis=None, keepdims: bool = False):
    x = _a(a)
    n = _reduced(x, axis)
    return record.op("mean", x.mean(axis=axis, keepdims=keepdims), (a,),
                     lambda dy, need: (_expand(dy / n, x, axis, keepdims).copy(),))


# ---------------------------------------------------------------------- activations: the layers' own code
def _through(layer, a):
    """Apply a stateless layer: recorded as a call of it (its own backward), or plainly."""
    if type(a) is Recorded:
        return record.call(layer, a)
    return layer.forward(a)


def relu(a):
    from .layers import ReLU

    return _through(ReLU(), a)


def leaky_relu(a, negative_slope: float = 0.01):
    from .layers import LeakyReLU

    return _through(LeakyReLU(negative_slope), a)


def tanh(a):
    from .layers import Tanh

    return _through(Tanh(), a)


def sigmoid(a):
    from .layers import Sigmoid

    return _through(Sigmoid(), a)


def softmax(a, dim: int = -1):
    from .layers import Softmax

    return _through(Softmax(dim), a)


def max_pool2d(a, kernel_size, stride=None, padding=0):
    from .layers import MaxPool2d

    return _through(MaxPool2d(kernel_size, stride, padding), a)


def avg_pool2d(a, kernel_size, stride=None, padding=0):
    from .layers import AvgPool2d

    return _through(AvgPool2d(kernel_size, stride, padding), a)


def log_softmax(a, dim: int = -1):
    x = _a(a)
    xp = backend.get_array_module(x)
    z = x - x.max(axis=dim, keepdims=True)
    y = z - xp.log(xp.exp(z).sum(axis=dim, keepdims=True))
    return record.op("log_softmax", y, (a,),
                     lambda dy, need: (dy - xp.exp(y) * dy.sum(axis=dim, keepdims=True),))


def dropout(a, p: float = 0.5, training: bool | None = None):
    """Inverted dropout as ``gpunet.Dropout``. ``training=None`` (default) follows the module: on in
    its recorded training forward, off otherwise. Each call site of a module's forward has its own
    counter-based random stream, kept in the module's random state (checkpoints resume it)."""
    if type(a) is not Recorded:
        if training:
            raise RuntimeError("gpunet.functional.dropout(training=True) on a plain array: functional dropout runs "
                               "inside a module's training forward (on its recorded values); elsewhere use "
                               "gpunet.Dropout")
        return a
    if training is False:
        return a
    tape = a.tape
    layer = tape.module._functional_dropout(tape.dropouts, p)
    tape.dropouts += 1
    return record.call(layer, a)
