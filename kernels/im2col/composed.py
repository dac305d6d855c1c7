"""A convolution as one matrix product over the whole batch, built from a tier's im2col functions:

    cols = im2col(x) (K, N·P);  Yc = W · cols (OC, N·P);  y = cnhw_to_nchw(Yc, b[, relu])
    dYc, db = nchw_to_cnhw(dy[, relu_y]);  dW = dYc · colsᵀ;  dx = col2im(Wᵀ · dYc)

The reference and the GPU tiers compute this way (the product through NumPy or CuPy's matmul,
i.e. BLAS or cuBLAS), and so does the CPU tier where no BLAS is callable from Numba. The column
matrix stays in ``scratch`` from the forward to the backward, which then writes Wᵀ·dYc over it.
"""
from __future__ import annotations

from ..common.xp import array_module


def _geometry(x_shape, kh, kw, sh, sw, ph, pw):
    n, c, h, w = x_shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return n, c * kh * kw, n * oh * ow


def forward_with(im2col, cnhw_to_nchw, x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    xp = array_module(x)
    n, k, m = _geometry(x.shape, kh, kw, sh, sw, ph, pw)
    oc = weight.shape[0]
    cols = scratch.get("cols", (k, m), x)
    im2col(x, cols, kh, kw, sh, sw, ph, pw)
    yc = scratch.get("mat", (oc, m), x)
    xp.matmul(weight.reshape(oc, k), cols, out=yc)
    if bias is None:
        bias = scratch.get("zero_bias", (oc,), x)
        bias[...] = 0
    cnhw_to_nchw(yc, bias, y, relu)


def backward_with(nchw_to_cnhw, col2im, x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    xp = array_module(dy)
    n, k, m = _geometry(x.shape, kh, kw, sh, sw, ph, pw)
    oc = weight.shape[0]
    cols = scratch.get("cols", (k, m), x)  # the forward's columns
    dyc = scratch.get("mat", (oc, m), dy)
    db = dbias if dbias is not None else scratch.get("dbias", (oc,), dy)
    nchw_to_cnhw(dy, dyc, db, relu_y)
    xp.matmul(dyc, cols.T, out=dweight.reshape(oc, k))
    if dx is not None:
        dcols = xp.matmul(weight.reshape(oc, k).T, dyc, out=cols)
        col2im(dcols, dx, kh, kw, sh, sw, ph, pw)
