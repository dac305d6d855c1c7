"""im2col / col2im and the whole convolution on the CPU, in Numba.

Same functions and formulas as ``reference`` (see there). The convolution (``conv_forward``,
``conv_backward``) is direct where ``direct.supported`` (enough taps, a kernel at least as large
as its stride: vector micro-kernels over the zero-padded input or its phases, no column matrix),
with the batch in the vector lanes for small outputs (lanes.py, where ``lanes.chosen``);
otherwise it runs in groups of images, one parallel region per pass with BLAS inside
(cpu_conv.py). ``im2col``/``col2im`` and the layout moves are the op's building blocks, parallel
over (image, channel) planes (the loops of planes.py), one pass, no temporaries. Each (n, c)
plane writes its own disjoint part of the output, so the parallel loops need no atomics.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..common import blas
from ..common.jit import njit
from . import cpu_conv, direct, lanes
from .composed import backward_with, forward_with
from .planes import U, col2im_plane, im2col_plane


@njit(parallel=True, fastmath=False, cache=True)
def _im2col(x, cols, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = x.shape
    p = oh * ow
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    for t in prange(n * c):
        b = t // c
        im2col_plane(xf, t * h * w, cf, b * p, n * p, t - b * c, kh, kw, sh, sw, ph, pw, h, w, oh, ow)


@njit(parallel=True, fastmath=False, cache=True)
def _col2im(cols, dx, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = dx.shape
    p = oh * ow
    df = dx.reshape(-1)
    cf = cols.reshape(-1)
    for t in prange(n * c):
        b = t // c
        col2im_plane(cf, b * p, n * p, df, t * h * w, t - b * c, kh, kw, sh, sw, ph, pw, h, w, oh, ow)


def im2col(x, cols, kh, kw, sh, sw, ph, pw):
    oh = (x.shape[2] + 2 * ph - kh) // sh + 1
    ow = (x.shape[3] + 2 * pw - kw) // sw + 1
    _im2col(x, cols, kh, kw, sh, sw, ph, pw, oh, ow)


def col2im(cols, dx, kh, kw, sh, sw, ph, pw):
    oh = (dx.shape[2] + 2 * ph - kh) // sh + 1
    ow = (dx.shape[3] + 2 * pw - kw) // sw + 1
    _col2im(cols, dx, kh, kw, sh, sw, ph, pw, oh, ow)


@njit(parallel=True, fastmath=False, cache=True)
def _cnhw_to_nchw(yc, bias, y3, relu, zero):
    n, c, p = y3.shape
    m = n * p
    ycf = yc.reshape(-1)
    yf = y3.reshape(-1)
    for t in prange(n * c):
        b = t // c
        ch = t - b * c
        bc = bias[ch]
        src = U(ch * m + b * p)
        dst = U(t * p)
        if relu:
            for k in range(U(p)):
                v = ycf[src + k] + bc
                yf[dst + k] = zero if v <= 0 else v  # max(v, 0) as numpy.maximum: NaN kept, -0 -> 0
        else:
            for k in range(U(p)):
                yf[dst + k] = ycf[src + k] + bc


@njit(parallel=True, fastmath=False, cache=True)
def _nchw_to_cnhw(dy3, dyc, dbias, mask3, masked, one, zero):
    # four float64 partial sums, so that the additions are not one long dependency chain; with
    # ``masked``, dy is first multiplied by [mask3 > 0] (a fused ReLU's backward)
    n, c, p = dy3.shape
    m = n * p
    dyf = dy3.reshape(-1)
    mf = mask3.reshape(-1)
    dcf = dyc.reshape(-1)
    p4 = U(p - p % 4)
    for ch in prange(c):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for b in range(n):
            src = U((b * c + ch) * p)
            dst = U(ch * m + b * p)
            for k in range(U(0), p4, U(4)):
                v0 = dyf[src + k]
                v1 = dyf[src + k + U(1)]
                v2 = dyf[src + k + U(2)]
                v3 = dyf[src + k + U(3)]
                if masked:  # loop-invariant: compiled as two loops
                    v0 = v0 * (one if mf[src + k] > 0 else zero)
                    v1 = v1 * (one if mf[src + k + U(1)] > 0 else zero)
                    v2 = v2 * (one if mf[src + k + U(2)] > 0 else zero)
                    v3 = v3 * (one if mf[src + k + U(3)] > 0 else zero)
                dcf[dst + k] = v0
                dcf[dst + k + U(1)] = v1
                dcf[dst + k + U(2)] = v2
                dcf[dst + k + U(3)] = v3
                s0 += v0
                s1 += v1
                s2 += v2
                s3 += v3
            for k in range(p4, U(p)):
                v0 = dyf[src + k]
                if masked:
                    v0 = v0 * (one if mf[src + k] > 0 else zero)
                dcf[dst + k] = v0
                s0 += v0
        dbias[ch] = (s0 + s1) + (s2 + s3)


def cnhw_to_nchw(yc, bias, y, relu=False):
    _cnhw_to_nchw(yc, bias, y.reshape(y.shape[0], y.shape[1], -1), bool(relu), y.dtype.type(0))


def nchw_to_cnhw(dy, dyc, dbias, relu_y=None):
    dy3 = dy.reshape(dy.shape[0], dy.shape[1], -1)
    one, zero = dy.dtype.type(1), dy.dtype.type(0)
    if relu_y is None:
        _nchw_to_cnhw(dy3, dyc, dbias, dy3, False, one, zero)
    else:
        _nchw_to_cnhw(dy3, dyc, dbias, relu_y.reshape(dy3.shape), True, one, zero)


# ----------------------------------------------------------------------------- the whole convolution
def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    """Enough taps (``direct.supported``): the direct convolution (direct.py). Otherwise one parallel
    region per pass (cpu_conv.py), or the composed product where no BLAS is callable from Numba."""
    if direct.supported(x.shape[1], kh, kw, sh, sw, ph, pw, x.dtype):
        if lanes.chosen(x.shape, kh, kw, sh, sw, ph, pw, x.dtype):
            return lanes.conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch)
        return direct.conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch,
                                   cpu_conv.chunks(x.shape[0], weight.shape[0], weight[0].size))
    if blas.BLAS is None:
        return forward_with(im2col, cnhw_to_nchw, x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch)
    return cpu_conv.conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch)


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    if direct.supported(x.shape[1], kh, kw, sh, sw, ph, pw, dy.dtype):
        if lanes.chosen(x.shape, kh, kw, sh, sw, ph, pw, dy.dtype):
            return lanes.conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch)
        return direct.conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch,
                                    cpu_conv.chunks(x.shape[0], weight.shape[0], weight[0].size))
    if blas.BLAS is None:
        return backward_with(nchw_to_cnhw, col2im, x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw,
                             scratch)
    return cpu_conv.conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch)


__all__ = ["im2col", "col2im", "cnhw_to_nchw", "nchw_to_cnhw", "conv_forward", "conv_backward"]
