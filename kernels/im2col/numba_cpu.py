"""im2col / col2im on the CPU: Numba, parallel over (image, channel) planes, one pass, no temporaries.

Same functions and formulas as ``reference`` (see there). Each (n, c) plane writes its own
disjoint part of the output, so the parallel loops need no atomics. For every kernel offset
(i, j) and output row, the range of output columns whose input column lies inside the image is
computed once, so the inner loop is a plain strided copy (a contiguous one at stride 1) with the
zero padding written around it.
"""
from __future__ import annotations

import numba
from numba import njit, prange


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
                    d = base + r * ow
                    if ih < 0 or ih >= h:
                        for q in range(ow):
                            cf[d + q] = 0
                        continue
                    for q in range(q0):
                        cf[d + q] = 0
                    src = xb + ih * w + j - pw
                    if sw == 1:
                        for q in range(q0, q1):
                            cf[d + q] = xf[src + q]
                    else:
                        for q in range(q0, q1):
                            cf[d + q] = xf[src + q * sw]
                    for q in range(q1, ow):
                        cf[d + q] = 0


@njit(parallel=True, fastmath=False, cache=True)
def _col2im(cols, dx, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = dx.shape
    p = oh * ow
    m = n * p
    df = dx.reshape(-1)
    cf = cols.reshape(-1)
    for t in prange(n * c):
        b = t // c
        ch = t - b * c
        xb = t * h * w
        for k in range(h * w):
            df[xb + k] = 0
        for i in range(kh):
            for j in range(kw):
                base = ((ch * kh + i) * kw + j) * m + b * p
                q0, q1 = _col_range(j, sw, pw, w, ow)
                for r in range(oh):
                    ih = r * sh + i - ph
                    if ih < 0 or ih >= h:
                        continue
                    s = base + r * ow
                    dst = xb + ih * w + j - pw
                    if sw == 1:
                        for q in range(q0, q1):
                            df[dst + q] += cf[s + q]
                    else:
                        for q in range(q0, q1):
                            df[dst + q * sw] += cf[s + q]


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
    for t in prange(n * c):
        b = t // c
        ch = t - b * c
        bc = bias[ch]
        src = b * p
        for k in range(p):
            y3[b, ch, k] = yc[ch, src + k] + bc


@njit(parallel=True, fastmath=False, cache=True)
def _nchw_to_cnhw(dy3, dyc, dbias):
    # four float64 partial sums, so that the additions are not one long dependency chain
    n, c, p = dy3.shape
    p4 = p - p % 4
    for ch in prange(c):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for b in range(n):
            dst = b * p
            for k in range(0, p4, 4):
                v0 = dy3[b, ch, k]
                v1 = dy3[b, ch, k + 1]
                v2 = dy3[b, ch, k + 2]
                v3 = dy3[b, ch, k + 3]
                dyc[ch, dst + k] = v0
                dyc[ch, dst + k + 1] = v1
                dyc[ch, dst + k + 2] = v2
                dyc[ch, dst + k + 3] = v3
                s0 += v0
                s1 += v1
                s2 += v2
                s3 += v3
            for k in range(p4, p):
                v0 = dy3[b, ch, k]
                dyc[ch, dst + k] = v0
                s0 += v0
        dbias[ch] = (s0 + s1) + (s2 + s3)


def cnhw_to_nchw(yc, bias, y):
    _cnhw_to_nchw(yc, bias, y.reshape(y.shape[0], y.shape[1], -1))


def nchw_to_cnhw(dy, dyc, dbias):
    _nchw_to_cnhw(dy.reshape(dy.shape[0], dy.shape[1], -1), dyc, dbias)


__all__ = ["im2col", "col2im", "cnhw_to_nchw", "nchw_to_cnhw", "numba"]
