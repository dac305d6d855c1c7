"""im2col / col2im and the whole convolution on the CPU, in Numba.

Same functions and formulas as ``reference`` (see there). The convolution (``conv_forward``,
``conv_backward``: see the section at the end) runs image by image in one parallel region with
BLAS inside; ``im2col``/``col2im`` and the layout moves are the op's building blocks, parallel
over (image, channel) planes, one pass, no temporaries. Each (n, c) plane writes its own
disjoint part of the output, so the parallel loops need no atomics. For every kernel offset
(i, j) and output row, the range of output columns whose input column lies inside the image is
computed once, so the inner loop is a plain strided copy (a contiguous one at stride 1) with the
zero padding written around it.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..common import blas
from ..common.blas import NO_TRANS, ROW_MAJOR, TRANS
from .composed import backward_with, forward_with

U = np.uint64  # flat indices are unsigned: no negative-index wraparound test, so loops vectorize


@njit(cache=True, inline="always")
def _col_range(j, sw, pw, w, ow):
    """[q0, q1): output columns q with 0 <= q·sw + j − pw < w."""
    q0 = max(0, -((j - pw) // sw))
    q1 = min(ow, (w - 1 + pw - j) // sw + 1)
    return q0, max(q0, q1)


@njit(fastmath=False, cache=True, inline="always")
def im2col_plane(xf, xb, cf, base, m, ch, kh, kw, sh, sw, ph, pw, h, w, oh, ow):
    """Rows (ch, i, j) of the columns for one input plane ``xf[xb : xb + h·w]``: row r of the
    column matrix starts at ``cf[r·m + base]`` (m: the matrix's row length)."""
    usw = U(sw)
    for i in range(kh):
        for j in range(kw):
            row = ((ch * kh + i) * kw + j) * m + base
            q0, q1 = _col_range(j, sw, pw, w, ow)
            for r in range(oh):
                ih = r * sh + i - ph
                d = U(row + r * ow)
                if ih < 0 or ih >= h:
                    for q in range(U(ow)):
                        cf[d + q] = 0
                    continue
                for q in range(U(q0)):
                    cf[d + q] = 0
                src = U(xb + ih * w + q0 * sw + j - pw)
                dst = d + U(q0)
                if sw == 1:
                    for q in range(U(q1 - q0)):
                        cf[dst + q] = xf[src + q]
                else:
                    for q in range(U(q1 - q0)):
                        cf[dst + q] = xf[src + q * usw]
                for q in range(U(q1), U(ow)):
                    cf[d + q] = 0


@njit(fastmath=False, cache=True, inline="always")
def col2im_plane(cf, base, m, df, xb, ch, kh, kw, sh, sw, ph, pw, h, w, oh, ow):
    """The adjoint of ``im2col_plane``: overwrite the plane ``df[xb : xb + h·w]`` with the sum of
    its rows' entries."""
    usw = U(sw)
    for k in range(U(h * w)):
        df[U(xb) + k] = 0
    for i in range(kh):
        for j in range(kw):
            row = ((ch * kh + i) * kw + j) * m + base
            q0, q1 = _col_range(j, sw, pw, w, ow)
            for r in range(oh):
                ih = r * sh + i - ph
                if ih < 0 or ih >= h:
                    continue
                src = U(row + r * ow + q0)
                dst = U(xb + ih * w + q0 * sw + j - pw)
                if sw == 1:
                    for q in range(U(q1 - q0)):
                        df[dst + q] += cf[src + q]
                else:
                    for q in range(U(q1 - q0)):
                        df[dst + q * usw] += cf[src + q]


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
# 2-D convolution on the CPU: one Numba parallel region per pass, image by image, the matrix
# products by BLAS from inside it (kernels/common/blas.py).
#
# The batch is cut into T chunks of consecutive images (T = ``chunks(N, OC, K)``, a function of
# the shapes only, never of the thread count, so results do not depend on how many threads run);
# each ``prange`` iteration takes one chunk and, per image n:
#
#     forward:   cols = im2col(x[n]) (K, P), cache-resident;   y[n] = W · cols  (one BLAS call, written
#                straight into the NCHW output);   then y[n] = y[n] + b, or max(y[n] + b, 0), in place
#     backward:  g = dy[n], or dy[n]·[relu_y[n] > 0] (written to a chunk buffer, its row sums added to the
#                chunk's float64 db);   cols = im2col(x[n]) again;   dW_t += g · colsᵀ;
#                and unless dx is skipped: cols = Wᵀ · g;  dx[n] = col2im(cols)
#
# then dW = Σ_t dW_t and db = Σ_t db_t in chunk order. No transpose pass, no (K, N·P) column matrix
# and no second thread pool: what stays between passes is the input x itself (the caller keeps
# it). Kept per layer in ``scratch``: T·K·P columns, T·OC·P masked gradients, T·OC·K partial dW
# and T·OC float64 partial db (for MNIST's 32→64 3×3 layer at batch 64: 3.9 MB).
#
# Where no BLAS is callable from Numba (``blas.BLAS`` is None) the tier computes as composed.py
# does, with the im2col op's Numba kernels and NumPy's matmul.


MAX_CHUNKS = 16
PARTIAL_LIMIT = 1 << 22  # elements of partial dW kept at most (T·OC·K), beyond two chunks


def chunks(n: int, oc: int, k: int) -> int:
    """The number of image chunks: up to 16, fewer for few images or a very large OC·K."""
    return max(1, min(n, MAX_CHUNKS, max(2, PARTIAL_LIMIT // max(oc * k, 1))))


# The BLAS functions are arguments (ctypes function objects, which Numba calls directly), so
# that the compiled loops do not embed an address and can be cached on disk.
@njit(parallel=True, fastmath=False, cache=True)
def _forward(gemm, set_local, x, w2, bias, y3, cols_t, kh, kw, sh, sw, ph, pw, oh, ow, relu, zero):
    n, c, h, w = x.shape
    oc, k = w2.shape
    p = oh * ow
    nt = cols_t.shape[0]
    xf = x.reshape(-1)
    for t in prange(nt):
        previous = set_local(1)
        cols = cols_t[t]
        cf = cols.reshape(-1)
        for b in range(n * t // nt, n * (t + 1) // nt):
            for ch in range(c):
                im2col_plane(xf, (b * c + ch) * h * w, cf, 0, p, ch, kh, kw, sh, sw, ph, pw, h, w, oh, ow)
            yb = y3[b]
            gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, oc, p, k, 1.0, w2.ctypes.data, k, cols.ctypes.data, p,
                 0.0, yb.ctypes.data, p)
            for o in range(oc):
                bo = bias[o]
                row = yb[o]
                if relu:
                    for q in range(p):
                        v = row[q] + bo
                        row[q] = zero if v <= 0 else v
                else:
                    for q in range(p):
                        row[q] = row[q] + bo
        set_local(previous)

@njit(parallel=True, fastmath=False, cache=True)
def _backward(gemm, set_local, x, w2, dy3, mask3, masked, dw_t, db_t, dx, need_dx, cols_t, g_t,
             kh, kw, sh, sw, ph, pw, oh, ow, one, zero):
    n, c, h, w = x.shape
    oc, k = w2.shape
    p = oh * ow
    nt = cols_t.shape[0]
    xf = x.reshape(-1)
    dxf = dx.reshape(-1)
    for t in prange(nt):
        previous = set_local(1)
        cols = cols_t[t]
        cf = cols.reshape(-1)
        dwt = dw_t[t]
        dbt = db_t[t]
        for o in range(oc):
            dbt[o] = 0.0
        b0 = n * t // nt
        b1 = n * (t + 1) // nt
        if b1 == b0:
            for o in range(oc):
                for j in range(k):
                    dwt[o, j] = 0
        for b in range(b0, b1):
            g = g_t[t] if masked else dy3[b]
            for o in range(oc):
                s = 0.0
                src = dy3[b, o]
                if masked:
                    m = mask3[b, o]
                    dst = g[o]
                    for q in range(p):
                        v = src[q] * (one if m[q] > 0 else zero)
                        dst[q] = v
                        s += v
                else:
                    for q in range(p):
                        s += src[q]
                dbt[o] += s
            for ch in range(c):
                im2col_plane(xf, (b * c + ch) * h * w, cf, 0, p, ch, kh, kw, sh, sw, ph, pw, h, w, oh, ow)
            gemm(ROW_MAJOR, NO_TRANS, TRANS, oc, k, p, 1.0, g.ctypes.data, p, cols.ctypes.data, p,
                 0.0 if b == b0 else 1.0, dwt.ctypes.data, k)
            if need_dx:
                gemm(ROW_MAJOR, TRANS, NO_TRANS, k, p, oc, 1.0, w2.ctypes.data, k, g.ctypes.data, p,
                     0.0, cols.ctypes.data, p)
                for ch in range(c):
                    col2im_plane(cf, 0, p, dxf, (b * c + ch) * h * w, ch, kh, kw, sh, sw, ph, pw, h, w, oh, ow)
        set_local(previous)




def _gemm(dtype):
    return blas.BLAS.sgemm if np.dtype(dtype) == np.float32 else blas.BLAS.dgemm


def _out(x_shape, kh, kw, sh, sw, ph, pw):
    h, w = x_shape[2], x_shape[3]
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    if blas.BLAS is None:
        return forward_with(im2col, cnhw_to_nchw, x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch)
    n, c = x.shape[:2]
    oc = weight.shape[0]
    k = c * kh * kw
    oh, ow = _out(x.shape, kh, kw, sh, sw, ph, pw)
    if bias is None:
        bias = scratch.get("zero_bias", (oc,), x)
        bias[...] = 0
    cols_t = scratch.get("cols", (chunks(n, oc, k), k, oh * ow), x)
    _forward(_gemm(x.dtype), blas.BLAS.set_threads_local, x, weight.reshape(oc, k), bias, y.reshape(n, oc, -1), cols_t, kh, kw, sh, sw, ph, pw,
                     oh, ow, bool(relu), x.dtype.type(0))


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    if blas.BLAS is None:
        return backward_with(nchw_to_cnhw, col2im, x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw,
                             scratch)
    n, c = x.shape[:2]
    oc = weight.shape[0]
    k = c * kh * kw
    oh, ow = _out(x.shape, kh, kw, sh, sw, ph, pw)
    p = oh * ow
    nt = chunks(n, oc, k)
    dy3 = dy.reshape(n, oc, p)
    masked = relu_y is not None
    mask3 = relu_y.reshape(n, oc, p) if masked else dy3
    dw_t = scratch.get("dw_partial", (nt, oc, k), dy)
    db_t = scratch.get("db_partial", (nt, oc), dy, np.float64)
    cols_t = scratch.get("cols", (nt, k, p), dy)
    g_t = scratch.get("masked_dy", (nt, oc, p), dy) if masked else scratch.get("masked_dy", (1, 1, 1), dy)
    t = dy.dtype.type
    _backward(_gemm(dy.dtype), blas.BLAS.set_threads_local, x, weight.reshape(oc, k), dy3, mask3, masked, dw_t, db_t,
                      dx if dx is not None else scratch.get("no_dx", x.shape[:2] + (0, 0), dy), dx is not None,
                      cols_t, g_t, kh, kw, sh, sw, ph, pw, oh, ow, t(1), t(0))
    np.sum(dw_t, axis=0, out=dweight.reshape(oc, k))
    if dbias is not None:
        dbias[...] = db_t.sum(axis=0)


__all__ = ["im2col", "col2im", "cnhw_to_nchw", "nchw_to_cnhw", "conv_forward", "conv_backward"]
