"""2-D pooling on the CPU: Numba, parallel over (image, channel) planes, one pass, no temporaries.

Same functions and formulas as ``reference`` (see there). Each plane is written by one thread,
so the backward scatters need no atomics. Window bounds are clipped to the image once per output.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..common.jit import njit

U = np.uint64  # flat indices are unsigned: no negative-index wraparound test in the hot loops


@njit(cache=True)
def _max_window(x, t, r0, r1, c0, c1, w):
    """The exact rule (larger or NaN replaces the running maximum), for windows holding a NaN."""
    best = x[t, r0, c0]
    arg = r0 * w + c0
    for a in range(r0, r1):
        for b in range(c0, c1):
            v = x[t, a, b]
            if v > best or v != v:
                best = v
                arg = a * w + b
    return best, arg


@njit(parallel=True, fastmath=False, cache=True)
def _max_fwd(x, y, idx, kh, kw, sh, sw, ph, pw):
    # The running maximum uses "v > best" alone (compiles to branch-free selects; a NaN test in
    # the same loop does not); the window's sum is NaN exactly when the window holds a NaN (or
    # both infinities), and then the exact rule reruns on that window.
    nc, h, w = x.shape
    _, oh, ow = y.shape
    for t in prange(nc):
        for r in range(oh):
            r0 = max(r * sh - ph, 0)
            r1 = min(r * sh - ph + kh, h)
            for q in range(ow):
                c0 = max(q * sw - pw, 0)
                c1 = min(q * sw - pw + kw, w)
                best = x[t, r0, c0]
                arg = r0 * w + c0
                s = best - best
                for a in range(r0, r1):
                    for b in range(c0, c1):
                        v = x[t, a, b]
                        s += v
                        if v > best:
                            best = v
                            arg = a * w + b
                if s != s:
                    best, arg = _max_window(x, t, r0, r1, c0, c1, w)
                y[t, r, q] = best
                idx[t, r, q] = arg


@njit(parallel=True, fastmath=False, cache=True)
def _max_fwd_2x2(x, y, idx):
    """kernel 2, stride 2, no padding: the same rule with the window unrolled, flat unsigned indices."""
    nc, h, w = x.shape
    _, oh, ow = y.shape
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    idf = idx.reshape(-1)
    uw = U(w)
    for t in prange(nc):
        xb = U(t * h * w)
        yb = U(t * oh * ow)
        for r in range(U(oh)):
            row = U(2) * r * uw
            for q in range(U(ow)):
                k = row + U(2) * q
                x00 = xf[xb + k]
                x01 = xf[xb + k + U(1)]
                x10 = xf[xb + k + uw]
                x11 = xf[xb + k + uw + U(1)]
                best = x00
                arg = k
                g = x01 > best
                best = x01 if g else best
                arg = k + U(1) if g else arg
                g = x10 > best
                best = x10 if g else best
                arg = k + uw if g else arg
                g = x11 > best
                best = x11 if g else best
                arg = k + uw + U(1) if g else arg
                s = x00 + x01 + x10 + x11
                o = yb + r * U(ow) + q
                if s != s:
                    a = int(k // uw)
                    b = int(k % uw)
                    best, iarg = _max_window(x, t, a, a + 2, b, b + 2, w)
                    arg = U(iarg)
                yf[o] = best
                idf[o] = arg


@njit(parallel=True, fastmath=False, cache=True)
def _max_bwd(dy, idx, dx):
    nc, p = dy.shape
    hw = dx.shape[1]
    dyf = dy.reshape(-1)
    idf = idx.reshape(-1)
    dxf = dx.reshape(-1)
    for t in prange(nc):
        xb = U(t * hw)
        yb = U(t * p)
        for k in range(U(hw)):
            dxf[xb + k] = 0
        for k in range(U(p)):
            dxf[xb + U(idf[yb + k])] += dyf[yb + k]


@njit(parallel=True, fastmath=False, cache=True)
def _avg_fwd(x, y, kh, kw, sh, sw, ph, pw, scale):
    nc, h, w = x.shape
    _, oh, ow = y.shape
    for t in prange(nc):
        for r in range(oh):
            r0 = max(r * sh - ph, 0)
            r1 = min(r * sh - ph + kh, h)
            for q in range(ow):
                c0 = max(q * sw - pw, 0)
                c1 = min(q * sw - pw + kw, w)
                s = 0.0
                for a in range(r0, r1):
                    for b in range(c0, c1):
                        s += x[t, a, b]
                y[t, r, q] = s * scale


@njit(parallel=True, fastmath=False, cache=True)
def _avg_bwd(dy, dx, kh, kw, sh, sw, ph, pw, scale):
    nc, h, w = dx.shape
    _, oh, ow = dy.shape
    for t in prange(nc):
        for a in range(h):
            for b in range(w):
                dx[t, a, b] = 0
        for r in range(oh):
            r0 = max(r * sh - ph, 0)
            r1 = min(r * sh - ph + kh, h)
            for q in range(ow):
                c0 = max(q * sw - pw, 0)
                c1 = min(q * sw - pw + kw, w)
                g = dy[t, r, q] * scale
                for a in range(r0, r1):
                    for b in range(c0, c1):
                        dx[t, a, b] += g


def _planes(a):
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2], a.shape[3])


def _flat_planes(a):
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2] * a.shape[3])


def maxpool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw):
    if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
        _max_fwd_2x2(_planes(x), _planes(y), _planes(idx))
        return
    _max_fwd(_planes(x), _planes(y), _planes(idx), kh, kw, sh, sw, ph, pw)


def maxpool2d_backward(dy, idx, dx, kh, kw, sh, sw, ph, pw):
    _max_bwd(_flat_planes(dy), _flat_planes(idx), _flat_planes(dx))


def avgpool2d_forward(x, y, kh, kw, sh, sw, ph, pw, scale):
    _avg_fwd(_planes(x), _planes(y), kh, kw, sh, sw, ph, pw, np.float64(scale))


def avgpool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, scale):
    _avg_bwd(_planes(dy), _planes(dx), kh, kw, sh, sw, ph, pw, np.float64(scale))
