"""im2col / col2im, NumPy reference (float64-capable): the specification of every tier.

A convolution of x (N, C, H, W) with a kernel kh×kw, stride (sh, sw) and zero padding (ph, pw)
has OH = (H + 2ph − kh) // sh + 1 rows and OW = (W + 2pw − kw) // sw + 1 columns of outputs. With
K = C·kh·kw and M = N·OH·OW, the column matrix is

    cols[(c, i, j), (n, oh, ow)] = x[n, c, oh·sh + i − ph, ow·sw + j − pw]   (0 outside x)

so that the convolution is one matrix product: Y = W (OC, K) · cols (K, M), Y of shape
(OC, M) = (OC, N, OH, OW) "CNHW". col2im is its adjoint (scatter-add, overwriting dx):

    dx[n, c, h, w] = Σ_{i, j, oh, ow : oh·sh + i − ph = h, ow·sw + j − pw = w} dcols[(c, i, j), (n, oh, ow)]

The layout moves between the product's (C, N·P) rows and NCHW (P = OH·OW):

    cnhw_to_nchw:  y[n, c, p] = yc[c, n·P + p] + bias[c]              (relu: then max(y, 0))
    nchw_to_cnhw:  dyc[c, n·P + p] = dy[n, c, p],   dbias[c] = Σ_{n, p} dy[n, c, p]

A ReLU after the convolution can be fused into these passes: ``cnhw_to_nchw(..., relu=True)``
writes max(yc + bias, 0) (NaN kept, as ``numpy.maximum``), and ``nchw_to_cnhw(..., relu_y=y)``
first multiplies dy by the mask [y > 0] (the ReLU's backward) and then moves and sums it.

The whole convolution (``conv_forward``/``conv_backward``, the layer's op) is, for every image n
with cols_n its (K, P) columns and W viewed as (OC, K):

    forward:   y[n] = W · cols_n + b            (then max(·, 0) when ``relu``)
    backward:  g_n = dy[n]  (times [relu_y[n] > 0] when the ReLU output is given)
               dW = Σ_n g_n · cols_nᵀ,   db = Σ_n Σ_p g_n[:, p],   dx[n] = col2im(Wᵀ · g_n)

written here (and in the GPU tiers) as one product over all images: see composed.py. Its
``scratch`` (kernels/common/scratch.py) is kept by the caller from the forward to the backward;
``dbias``/``dx`` None: not computed.

Every function writes into the arrays it is given and returns nothing.
"""
from __future__ import annotations

import numpy as np

from ..common.xp import array_module as _xp
from .composed import backward_with, forward_with


def out_size(size: int, k: int, s: int, p: int) -> int:
    """Output length of a window of k with stride s over size + 2p (floor mode)."""
    return (size + 2 * p - k) // s + 1


def im2col(x, cols, kh, kw, sh, sw, ph, pw):
    n, c, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    xpad = _xp(x).zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    xpad[:, :, ph:ph + h, pw:pw + w] = x
    v = cols.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            win = xpad[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            v[:, i, j] = win.transpose(1, 0, 2, 3)


def col2im(cols, dx, kh, kw, sh, sw, ph, pw):
    n, c, h, w = dx.shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    dxp = _xp(dx).zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dx.dtype)
    v = cols.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += v[:, i, j].transpose(1, 0, 2, 3)
    dx[...] = dxp[:, :, ph:ph + h, pw:pw + w]


def cnhw_to_nchw(yc, bias, y, relu=False):
    n, c = y.shape[:2]
    y[...] = (yc.reshape(c, n, -1).transpose(1, 0, 2) + bias[None, :, None]).reshape(y.shape)
    if relu:
        _xp(y).maximum(y, 0, out=y)


def nchw_to_cnhw(dy, dyc, dbias, relu_y=None):
    n, c = dy.shape[:2]
    if relu_y is not None:
        with np.errstate(invalid="ignore"):  # inf · 0 -> NaN, as ReLU.backward gives
            dy = dy * (relu_y > 0)
    d = dy.reshape(n, c, -1)
    dyc[...] = d.transpose(1, 0, 2).reshape(c, -1)
    dbias[...] = d.sum(axis=(0, 2))


def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    forward_with(im2col, cnhw_to_nchw, x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch)


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    backward_with(nchw_to_cnhw, col2im, x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch)
