"""im2col / col2im on the CPU: Numba, parallel over (image, channel) planes, one pass, no temporaries.

Same functions and formulas as ``reference`` (see there). Each (n, c) plane writes its own
disjoint part of the output, so the parallel loops need no atomics. For every kernel offset
(i, j) and output row, the range of output columns whose input column lies inside the image is
computed once, so the inner loop is a plain strided copy (a contiguous one at stride 1) with the
zero padding written around it.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

U = np.uint64  # flat indices are unsigned: no negative-index wraparound test, so loops vectorize


@njit(cache=True, inline="always")
def _col_range(j, sw, pw, w, ow):
    """[q0, q1): output columns q with 0 <= q·sw + j − pw < w."""
    q0 = max(0, -((j - pw) // sw))
    q1 = min(ow, (w - 1 + pw - j) // sw + 1)
    return q0, max(q0, q1)


@njit(parallel=True, fastmath=False, cache=True)
def _im2col(x, cols, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = x.shape
    p = oh * ow
    m = n * p
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    usw = U(sw)
    for t in prange(n * c):
        b = t // c
        ch = t - b * c
        xb = t * h * w
        for i in range(kh):
            for j in range(kw):
                base = ((ch * kh + i) * kw + j) * m + b * p
                q0, q1 = _col_range(j, sw, pw, w, ow)
                for r in range(oh):
                    ih = r * sh + i - ph
                    d = U(base + r * ow)
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


@njit(parallel=True, fastmath=False, cache=True)
def _col2im(cols, dx, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = dx.shape
    p = oh * ow
    m = n * p
    df = dx.reshape(-1)
    cf = cols.reshape(-1)
    usw = U(sw)
    for t in prange(n * c):
        b = t // c
        ch = t - b * c
        xb = U(t * h * w)
        for k in range(U(h * w)):
            df[xb + k] = 0
        for i in range(kh):
            for j in range(kw):
                base = ((ch * kh + i) * kw + j) * m + b * p
                q0, q1 = _col_range(j, sw, pw, w, ow)
                for r in range(oh):
                    ih = r * sh + i - ph
                    if ih < 0 or ih >= h:
                        continue
                    src = U(base + r * ow + q0)
                    dst = xb + U(ih * w + q0 * sw + j - pw)
                    if sw == 1:
                        for q in range(U(q1 - q0)):
                            df[dst + q] += cf[src + q]
                    else:
                        for q in range(U(q1 - q0)):
                            df[dst + q * usw] += cf[src + q]


def im2col(x, cols, kh, kw, sh, sw, ph, pw):
    oh = (x.shape[2] + 2 * ph - kh) // sh + 1
    ow = (x.shape[3] + 2 * pw - kw) // sw + 1
    _im2col(x, cols, kh, kw, sh, sw, ph, pw, oh, ow)


def col2im(cols, dx, kh, kw, sh, sw, ph, pw):
    oh = (dx.shape[2] + 2 * ph - kh) // sh + 1
    ow = (dx.shape[3] + 2 * pw - kw) // sw + 1
    _col2im(cols, dx, kh, kw, sh, sw, ph, pw, oh, ow)


@njit(parallel=True, fastmath=False, cache=True)
def _cnhw_to_nchw(yc, bias, y3):
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
        for k in range(U(p)):
            yf[dst + k] = ycf[src + k] + bc


@njit(parallel=True, fastmath=False, cache=True)
def _nchw_to_cnhw(dy3, dyc, dbias):
    # four float64 partial sums, so that the additions are not one long dependency chain
    n, c, p = dy3.shape
    m = n * p
    dyf = dy3.reshape(-1)
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
                dcf[dst + k] = v0
                s0 += v0
        dbias[ch] = (s0 + s1) + (s2 + s3)


def cnhw_to_nchw(yc, bias, y):
    _cnhw_to_nchw(yc, bias, y.reshape(y.shape[0], y.shape[1], -1))


def nchw_to_cnhw(dy, dyc, dbias):
    _nchw_to_cnhw(dy.reshape(dy.shape[0], dy.shape[1], -1), dyc, dbias)


__all__ = ["im2col", "col2im", "cnhw_to_nchw", "nchw_to_cnhw"]
