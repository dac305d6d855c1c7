"""2-D pooling, NumPy reference (float64-capable): the specification of every tier.

Over x (N, C, H, W) with windows kh×kw, stride (sh, sw) and padding (ph, pw), output (N, C, OH, OW)
with OH = (H + 2ph − kh) // sh + 1, OW = (W + 2pw − kw) // sw + 1 (floor mode, as PyTorch). The
window of output (oh, ow) covers rows oh·sh − ph + i and columns ow·sw − pw + j.

Max pooling pads with −∞ and records where the maximum is, as the flat index ih·W + iw inside
the (n, c) plane (int32); scanning the window row by row, an element replaces the running
maximum when it is larger or NaN (PyTorch's rule: the first maximum wins, NaN propagates), and
the running index starts at the window's first element inside the image:

    y[n, c, oh, ow] = max_window x,   idx[n, c, oh, ow] = argmax
    dx[n, c, h, w] = Σ_{oh, ow : idx[n, c, oh, ow] = h·W + w} dy[n, c, oh, ow]

(the backward takes the window geometry too: gather tiers scan the windows that hold (h, w))

Average pooling pads with zeros and divides by kh·kw (PyTorch's count_include_pad=True);
``scale`` = 1 / (kh·kw) is computed by the caller in float64:

    y[n, c, oh, ow] = scale · Σ_window x,   dx[n, c, h, w] = scale · Σ_{windows ∋ (h, w)} dy[n, c, oh, ow]

Every function writes into the arrays it is given; dx is overwritten.
"""
from __future__ import annotations

import numpy as np

from ..common.xp import array_module as _xp


def _windows(h, w, kh, kw, sh, sw, ph, pw, oh, ow, xp):
    """For each offset (i, j): row and column indices (OH,), (OW,) and their validity."""
    rows = xp.arange(oh) * sh - ph
    cols = xp.arange(ow) * sw - pw
    for i in range(kh):
        for j in range(kw):
            r, c = rows + i, cols + j
            yield r, c, (r >= 0) & (r < h), (c >= 0) & (c < w)


def maxpool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw):
    xp = _xp(x)
    n, c, h, w = x.shape
    oh, ow = y.shape[2:]
    best = xp.full(y.shape, -np.inf, dtype=x.dtype)
    r0 = xp.maximum(xp.arange(oh) * sh - ph, 0)
    c0 = xp.maximum(xp.arange(ow) * sw - pw, 0)
    arg = xp.broadcast_to((r0[:, None] * w + c0[None, :]).astype(np.int64), y.shape).copy()
    for r, col, rv, cv in _windows(h, w, kh, kw, sh, sw, ph, pw, oh, ow, xp):
        ok = rv[:, None] & cv[None, :]
        v = x[:, :, xp.clip(r, 0, h - 1)[:, None], xp.clip(col, 0, w - 1)[None, :]]
        take = ok & ((v > best) | xp.isnan(v))
        best = xp.where(take, v, best)
        arg = xp.where(take, r[:, None] * w + col[None, :], arg)
    y[...] = best
    idx[...] = arg


def maxpool2d_backward(dy, idx, dx, kh, kw, sh, sw, ph, pw):
    xp = _xp(dy)
    n, c, h, w = dx.shape
    planes = xp.zeros((n * c, h * w), dtype=dx.dtype)
    rows = xp.repeat(xp.arange(n * c), dy[0, 0].size)
    xp.add.at(planes, (rows, idx.reshape(-1).astype(np.int64)), dy.reshape(-1))
    dx[...] = planes.reshape(dx.shape)


def avgpool2d_forward(x, y, kh, kw, sh, sw, ph, pw, scale):
    xp = _xp(x)
    n, c, h, w = x.shape
    oh, ow = y.shape[2:]
    acc = xp.zeros(y.shape, dtype=x.dtype)
    for r, col, rv, cv in _windows(h, w, kh, kw, sh, sw, ph, pw, oh, ow, xp):
        ok = rv[:, None] & cv[None, :]
        v = x[:, :, xp.clip(r, 0, h - 1)[:, None], xp.clip(col, 0, w - 1)[None, :]]
        acc += xp.where(ok, v, 0)
    y[...] = acc * scale


def avgpool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, scale):
    xp = _xp(dy)
    n, c, h, w = dx.shape
    oh, ow = dy.shape[2:]
    pad = xp.zeros((n, c, h + 2 * ph + kh + sh, w + 2 * pw + kw + sw), dtype=dx.dtype)
    for i in range(kh):
        for j in range(kw):
            pad[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += dy
    dx[...] = pad[:, :, ph:ph + h, pw:pw + w] * scale
