"""2-D pooling, CUDA C tier: pool.cu through cupy.RawModule, compiled once per process.

Asynchronous launches on CuPy's current stream. Device plumbing and the ``device`` test seam:
kernels/common/cupy.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import compiled, grid, sourced, suffix

THREADS = 256


source = sourced(Path(__file__).with_name("pool.cu"))  # the .cu file, shared headers pasted in
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def _run(name, dtype, work, args):
    dev = _device()
    if work:
        blocks = grid(dev, work, THREADS, per_sm=32)
        dev.kernel(f"{name}_{suffix(dtype)}")((blocks,), (THREADS,), args)


def _dims(x_shape, y_shape, kh, kw, sh, sw, ph, pw):
    n, c, h, w = x_shape
    return tuple(np.int32(v) for v in (n * c, h, w, y_shape[2], y_shape[3], kh, kw, sh, sw, ph, pw))


def maxpool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw):
    _run("maxpool2d_forward", x.dtype, y.size, (x, y, idx) + _dims(x.shape, y.shape, kh, kw, sh, sw, ph, pw))


def maxpool2d_backward(dy, idx, dx, kh, kw, sh, sw, ph, pw):
    _run("maxpool2d_backward", dx.dtype, dx.size, (dy, idx, dx) + _dims(dx.shape, dy.shape, kh, kw, sh, sw, ph, pw))


def avgpool2d_forward(x, y, kh, kw, sh, sw, ph, pw, scale):
    _run("avgpool2d_forward", x.dtype, y.size,
         (x, y) + _dims(x.shape, y.shape, kh, kw, sh, sw, ph, pw) + (np.float64(scale),))


def avgpool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, scale):
    _run("avgpool2d_backward", dx.dtype, dx.size,
         (dy, dx) + _dims(dx.shape, dy.shape, kh, kw, sh, sw, ph, pw) + (np.float64(scale),))
