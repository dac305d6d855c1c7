"""The per-plane im2col and col2im loops, inlined into the CPU tier's kernels (numba_cpu.py and
cpu_conv.py).

For every kernel offset (i, j) and output row, the range of output columns whose input column
lies inside the image is computed once, so the inner loop is a plain strided copy (a contiguous
one at stride 1) with the zero padding written around it; at stride 1 with the output as wide as
the input ("same" padding) all the rows of one (i, j) are one contiguous copy.

Numba's on-disk cache of the kernels that inline these loops does not notice a change to this
file: after editing it, delete kernels/im2col/__pycache__ (a clean clone compiles afresh).
"""
from __future__ import annotations

import numpy as np
from ..common.jit import njit

U = np.uint64  # flat indices are unsigned: no negative-index wraparound test, so loops vectorize


@njit(cache=True, inline="always")
def _col_range(j, sw, pw, w, ow):
    """[q0, q1): output columns q with 0 <= q·sw + j − pw < w."""
    q0 = max(0, -((j - pw) // sw))
    q1 = min(ow, (w - 1 + pw - j) // sw + 1)
    return q0, max(q0, q1)


@njit(cache=True, inline="always")
def _rows_inside(i, ph, h, oh):
    """[r0, r1): output rows r whose input row r + i − ph lies inside the image (stride 1)."""
    r0 = min(oh, max(0, ph - i))
    return r0, max(r0, min(oh, h + ph - i))


@njit(fastmath=False, cache=True, inline="always")
def _zero_padding_columns(cf, row, r0, r1, ow, q0, q1):
    """Entries q < q0 and q >= q1 (input columns in the padding) of rows r0..r1−1 of one (i, j)
    row of the columns, set to 0."""
    for r in range(r0, r1):
        d = row + U(r * ow)
        for q in range(U(q0)):
            cf[d + q] = 0
        for q in range(U(q1), U(ow)):
            cf[d + q] = 0


@njit(fastmath=False, cache=True, inline="always")
def _same_im2col_plane(xf, xb, cf, base, m, ch, kh, kw, ph, pw, h, w, oh, ow):
    """im2col_plane for stride 1 and ow == w ("same" width): for each (i, j) the rows inside the
    image are one contiguous copy (source and destination rows are both w apart), after which
    the columns that fall in the padding are zeroed again."""
    p = oh * ow
    for i in range(kh):
        r0, r1 = _rows_inside(i, ph, h, oh)
        for j in range(kw):
            row = U(((ch * kh + i) * kw + j) * m + base)
            q0, q1 = _col_range(j, 1, pw, w, ow)
            for q in range(U(r0 * ow)):
                cf[row + q] = 0
            for q in range(U(r1 * ow), U(p)):
                cf[row + q] = 0
            if r1 == r0:
                continue
            dst = row + U(r0 * ow + q0)
            src = U(xb + (r0 + i - ph) * w + q0 + j - pw)
            for q in range(U((r1 - 1 - r0) * ow + q1 - q0)):
                cf[dst + q] = xf[src + q]
            _zero_padding_columns(cf, row, r0, r1, ow, q0, q1)


@njit(fastmath=False, cache=True, inline="always")
def im2col_plane(xf, xb, cf, base, m, ch, kh, kw, sh, sw, ph, pw, h, w, oh, ow):
    """Rows (ch, i, j) of the columns for one input plane ``xf[xb : xb + h·w]``: row r of the
    column matrix starts at ``cf[r·m + base]`` (m: the matrix's row length)."""
    if sh == 1 and sw == 1 and ow == w:
        _same_im2col_plane(xf, xb, cf, base, m, ch, kh, kw, ph, pw, h, w, oh, ow)
        return
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
def col2im_plane(cf, base, m, df, xb, ch, kh, kw, sh, sw, ph, pw, h, w, oh, ow, clobber=False):
    """The adjoint of ``im2col_plane``: overwrite the plane ``df[xb : xb + h·w]`` with the sum of
    its rows' entries. With ``clobber`` (columns that are scratch), stride 1 and ow == w, each
    (i, j) row is added in one contiguous pass after its entries that fall in the padding are set
    to 0 (adding +0 changes no sum: the same bits)."""
    usw = U(sw)
    for k in range(U(h * w)):
        df[U(xb) + k] = 0
    if clobber and sh == 1 and sw == 1 and ow == w:
        for i in range(kh):
            r0, r1 = _rows_inside(i, ph, h, oh)
            if r1 == r0:
                continue
            for j in range(kw):
                row = U(((ch * kh + i) * kw + j) * m + base)
                q0, q1 = _col_range(j, 1, pw, w, ow)
                _zero_padding_columns(cf, row, r0, r1, ow, q0, q1)
                src = row + U(r0 * ow + q0)
                dst = U(xb + (r0 + i - ph) * w + q0 + j - pw)
                for q in range(U((r1 - 1 - r0) * ow + q1 - q0)):
                    df[dst + q] += cf[src + q]
        return
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
