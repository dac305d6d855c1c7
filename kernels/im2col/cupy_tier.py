"""im2col / col2im, CUDA C tier: im2col.cu through cupy.RawModule, compiled once per process.

Launches are asynchronous (no host synchronization), on CuPy's current stream. Device plumbing
and the ``device`` test seam: kernels/common/cupy.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import compiled, grid, sourced, suffix
from .composed import backward_with, forward_with

THREADS = 256  # channel_sum's shared-memory tree assumes exactly this block size


source = sourced(Path(__file__).with_name("im2col.cu"))  # the .cu file, shared headers pasted in
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def _run(name, dtype, work, args, blocks=None):
    dev = _device()
    if blocks is None:
        blocks = grid(dev, work, THREADS, per_sm=32)
    dev.kernel(f"{name}_{suffix(dtype)}")((blocks,), (THREADS,), args)


def _geom(x_shape, kh, kw, sh, sw, ph, pw):
    n, c, h, w = (int(s) for s in x_shape)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return tuple(np.int32(v) for v in (n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow))


def im2col(x, cols, kh, kw, sh, sw, ph, pw):
    if cols.size:
        _run("im2col", x.dtype, cols.size, (x, cols) + _geom(x.shape, kh, kw, sh, sw, ph, pw))


def col2im(cols, dx, kh, kw, sh, sw, ph, pw):
    if dx.size:
        _run("col2im", dx.dtype, dx.size, (cols, dx) + _geom(dx.shape, kh, kw, sh, sw, ph, pw))


def _ncp(a):
    n, c = a.shape[:2]
    return np.int32(n), np.int32(c), np.int32(a.size // max(n * c, 1))


def cnhw_to_nchw(yc, bias, y, relu=False):
    if y.size:
        _run("cnhw_to_nchw", y.dtype, y.size, (yc, bias, y) + _ncp(y) + (np.int32(bool(relu)),))


def nchw_to_cnhw(dy, dyc, dbias, relu_y=None):
    if dy.size:
        if relu_y is None:
            _run("nchw_to_cnhw", dy.dtype, dy.size, (dy, dyc) + _ncp(dy))
        else:
            _run("nchw_to_cnhw_relu", dy.dtype, dy.size, (dy, relu_y, dyc) + _ncp(dy))
        _run("channel_sum", dy.dtype, 0, (dyc, dbias) + _ncp(dy), blocks=dy.shape[1])
    elif dbias.size:
        dbias[...] = 0


def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    forward_with(im2col, cnhw_to_nchw, x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch)


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    backward_with(nchw_to_cnhw, col2im, x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch)
