"""Direct 2-D convolution on the CPU: every tap reads the zero-padded input in place, with no
column matrix (tiles.py holds the micro-kernels; numba_cpu.py chooses this path, ``supported``,
or for small outputs of many images lanes.py, which lays the same computation out with the
batch in the vector lanes).

An image's C planes are zero-padded to Hp × Wp (Hp = H + 2·ph, Wp = W + 2·pw) and cut by the
stride (sh, sw) into its phases: plane (c, a, b) holds xpad[c, sh·u + a, sw·v + b] for u < Hq =
⌈Hp/sh⌉ and v < Wq = ⌈Wp/sw⌉ (at stride 1 one phase, the padded plane itself). The planes lie
end to end in ``xpad``. Tap k = (c, i, j) reads plane (c, i mod sh, j mod sw) from row i // sh and
column j // sw on, so on the padded width — t = r·Wq + s for output rows r < OH and every s < Wq —

    yext[o, t] = Σ_{c,i,j} W[o, c, i, j] · xpad[offs[k] + t],
    offs[k] = ((c·sh + i mod sh)·sw + j mod sw)·Hq·Wq + (i // sh)·Wq + j // sw

a run of xpad that starts at offs[k]. Columns s ≥ OW are not outputs: the epilogue drops them
while it adds the bias (and applies ReLU), and the backward zeroes them in its copy of dy. They
cost Wq/OW − 1 more multiply-adds (7% on 28×28, 29% on 7×7 with "same" 3×3 at stride 1), against
im2col's copy of kh·kw/(sh·sw) times the input that the BLAS product then packs once more.

    forward:  yext = fma tiles over (o, t);                      y = crop(yext) + b (ReLU)
    backward: g = dy (· [y > 0]) on the padded width, zero at s ≥ OW; db = Σ g (float64)
              dW[o, k] += Σ_images Σ_t g[o, t] · xpad[offs[k] + t]   (dot tiles, per chunk)
              dx: per phase (a, b), a stride-1 convolution of g with the flipped sub-kernel
                  W[:, :, a::sh, b::sw] (C and OC swapped), over dy padded by (qh, qw) on all
                  sides, on the rows and columns of the phase that land inside x

The batch is cut into chunks of consecutive images (``cpu_conv.chunks``, fewer in the backward
for small images: functions of the shapes only); each chunk's dW is one set of dot products over
its images, the chunks' summed in chunk order: results do not depend on the thread count.
Output channels are padded to a multiple of the tile's rows (MR, or MA for dW) with zero
weights or gradients, taps to a multiple of KB with a zero offset; what the padding computes is
thrown away. Kept per layer in
``scratch``: per chunk its images' planes, their padded-width gradients and one partial dW; the
padded-width output of one image (the padded dy and dx for the backward) per chunk; the weights
in the tiles' layout (at batch 64: 10 MB for resnet_small's 16→16 layer on 28×28, 7.0 MB for
dropout_cnn's 32→64 layer on 13×13, which kept 3.9 MB through columns).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import prange

from ..common.jit import njit
from .planes import U
from .tiles import KB, MA, MR, NV, dot_tile, fma_tile, lanes, vector_lanes


MIN_TAPS = 32  # C·kh·kw below which cpu_conv.py's columns and product are faster
DW_COLUMNS = 1024  # padded-width outputs per chunk, at least, for the backward's dW dot products


def supported(c, kh, kw, sh, sw, ph, pw, dtype) -> bool:
    """Whether this path computes the convolution: a kernel at least as large as the stride
    (every phase has taps), padding below the kernel size, and at least ``MIN_TAPS`` taps.
    (With one input channel, C·kh·kw = 9 for 3×3, a tile's sum is too short to pay for the
    padding and epilogue passes: measured at batch 64 on two cores, 1→32 on 28×28 took 0.25/0.65
    ms forward/backward through columns and 0.31/0.73 ms direct.)"""
    return (kh >= sh and kw >= sw and ph < kh and pw < kw and c * kh * kw >= MIN_TAPS
            and np.dtype(dtype) in (np.float32, np.float64))


def ceil_to(a, b):
    return -(-a // b) * b


@njit(fastmath=False, cache=True, inline="always")
def _pad_planes(src, sb, ps, rs, c, h, w, dst, ph, pw, tail):
    """dst = c planes of h rows of w values (row r of plane ch at src[sb + ch·ps + r·rs]),
    zero-padded by (ph, pw) and laid end to end, then ``tail`` zeros (the runs of the last taps
    read past the last plane). The stride-1 case of _phase_planes."""
    wp = w + 2 * pw
    at = U(0)
    for ch in range(c):
        for q in range(U(ph * wp)):
            dst[at + q] = 0
        at += U(ph * wp)
        for r in range(h):
            row = U(sb + ch * ps + r * rs)
            for q in range(U(pw)):
                dst[at + q] = 0
            for q in range(U(w)):
                dst[at + U(pw) + q] = src[row + q]
            for q in range(U(pw + w), U(wp)):
                dst[at + q] = 0
            at += U(wp)
        for q in range(U(ph * wp)):
            dst[at + q] = 0
        at += U(ph * wp)
    for q in range(U(tail)):
        dst[at + q] = 0


@njit(fastmath=False, cache=True, inline="always")
def _phase_planes(src, sb, ps, rs, c, h, w, dst, sh, sw, ph, pw, hq, wq, tail):
    """dst = for each channel ch and phase (a, b) the hq × wq plane xpad[ch, sh·u + a, sw·v + b]
    (xpad: plane ch of src, as in _pad_planes, zero-padded by (ph, pw)), end to end, then
    ``tail`` zeros. Each padded row is first copied whole into ``row``, then dealt out to its sw
    phases (at sw = 2 one loop of paired loads, which LLVM vectorizes)."""
    plane = U(hq * wq)
    row = np.zeros(sw * wq, dst.dtype)  # one padded row, zeros past the image's columns
    for ch in range(c):
        for a in range(sh):
            for u in range(hq):
                r = sh * u + a - ph
                inside = 0 <= r < h
                if inside:
                    at = U(sb + ch * ps + r * rs)
                    for q in range(U(w)):
                        row[U(pw) + q] = src[at + q]
                first = U(((ch * sh + a) * sw) * hq * wq + u * wq)
                if not inside:
                    for b in range(sw):
                        for v in range(U(wq)):
                            dst[first + U(b) * plane + v] = 0
                elif sw == 2:
                    for v in range(U(wq)):
                        dst[first + v] = row[U(2) * v]
                        dst[first + plane + v] = row[U(2) * v + U(1)]
                else:
                    for b in range(sw):
                        for v in range(U(wq)):
                            dst[first + U(b) * plane + v] = row[U(sw) * v + U(b)]
    at = U(c * sh * sw) * plane
    for q in range(U(tail)):
        dst[at + q] = 0


@njit(fastmath=False, cache=True, inline="always")
def _planes(src, sb, ps, rs, c, h, w, dst, sh, sw, ph, pw, hq, wq, tail):
    if sh == 1 and sw == 1:
        _pad_planes(src, sb, ps, rs, c, h, w, dst, ph, pw, tail)
    else:
        _phase_planes(src, sb, ps, rs, c, h, w, dst, sh, sw, ph, pw, hq, wq, tail)


@njit(fastmath=False, cache=True, inline="always")
def _tiles(xp, wf, k, offs, yext):
    """yext (OCp, Tr) = the fma tiles of the padded image xp with the first k taps of the packed
    weights wf (OCp / MR, Kmax, MR)."""
    nblk, kmax = wf.shape[0], wf.shape[1]
    tr = yext.shape[1]
    step = vector_lanes(xp) * NV  # outputs per tile
    isz = xp.itemsize
    for blk in range(nblk):
        wb = wf.ctypes.data + isz * blk * kmax * MR
        for t0 in range(0, tr, step):
            fma_tile(xp, xp.ctypes.data + isz * t0, wb, offs.ctypes.data, k, MR,
                     yext.ctypes.data + isz * (blk * MR * tr + t0), tr)


@njit(parallel=True, fastmath=False, cache=True)
def _forward(x, wf, bias, y, xpad_t, yext_t, offs, sh, sw, ph, pw, hq, wq, relu, zero):
    n, c, h, w = x.shape
    oc, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    nt = xpad_t.shape[0]
    tail = xpad_t.shape[1] - c * sh * sw * hq * wq
    tr = yext_t.shape[2]
    xf, yf = x.reshape(-1), y.reshape(-1)
    for t in prange(nt):
        xp = xpad_t[t]
        ye = yext_t[t]
        ef = ye.reshape(-1)
        for b in range(n * t // nt, n * (t + 1) // nt):
            _planes(xf, b * c * h * w, h * w, w, c, h, w, xp, sh, sw, ph, pw, hq, wq, tail)
            _tiles(xp, wf, wf.shape[1], offs, ye)
            for o in range(oc):
                bo = bias[o]
                for r in range(oh):
                    src = U(o * tr + r * wq)
                    dst = U(((b * oc + o) * oh + r) * ow)
                    for s in range(U(ow)):
                        v = ef[src + s] + bo
                        yf[dst + s] = (zero if v <= 0 else v) if relu else v


@njit(parallel=True, fastmath=False, cache=True)
def _backward(x, dy, mask, masked, dw_t, db_t, dx, need_dx, wd, offs, offs_dx, phases, xpad_t, g_t, dypad_t,
              dxext_t, sh, sw, ph, pw, hq, wq, qh, qw, one, zero):
    n, c, h, w = x.shape
    oc, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    wg = ow + 2 * qw  # dy's padded width (the dx passes' "input")
    nt = xpad_t.shape[0]
    tail = xpad_t.shape[2] - c * sh * sw * hq * wq
    tail_dy = dypad_t.shape[1] - oc * (oh + 2 * qh) * wg
    ocp, tr = g_t.shape[2], g_t.shape[3]
    kp = dw_t.shape[2]
    step = vector_lanes(x)
    isz = x.itemsize
    xf, dyf, mf, dxf = x.reshape(-1), dy.reshape(-1), mask.reshape(-1), dx.reshape(-1)
    size = xpad_t.shape[2]
    cp = wd.shape[1] * MR
    for t in prange(nt):
        dwt = dw_t[t]
        dbt = db_t[t]
        dwt[:] = 0
        dbt[:] = 0
        g_t[t] = 0  # the padded rows, the columns s >= OW and the tail stay 0
        b0, b1 = n * t // nt, n * (t + 1) // nt
        for b in range(b0, b1):
            gf = g_t[t, b - b0].reshape(-1)
            for o in range(oc):
                s_ = 0.0
                for r in range(oh):
                    src = U(((b * oc + o) * oh + r) * ow)
                    at = U(o * tr + r * wq)
                    for s in range(U(ow)):
                        v = dyf[src + s] * (one if mf[src + s] > 0 else zero) if masked else dyf[src + s]
                        gf[at + s] = v
                        s_ += v
                dbt[o] += s_
            _planes(xf, b * c * h * w, h * w, w, c, h, w, xpad_t[t, b - b0], sh, sw, ph, pw, hq, wq, tail)
        gptr, xptr = g_t[t].ctypes.data, xpad_t[t].ctypes.data
        for o0 in range(0, ocp, MA):
            for k0 in range(0, kp, KB):  # dW over the chunk's images, in image order
                dot_tile(x, gptr + isz * o0 * tr, tr, xptr, offs.ctypes.data + 8 * k0, tr // step,
                         dwt.ctypes.data + isz * (o0 * kp + k0), kp, b1 - b0, ocp * tr, size)
        if need_dx:
            dp = dypad_t[t]
            de = dxext_t[t].reshape(-1)
            for b in range(b0, b1):
                if masked:  # dx reads the masked gradient: its rows from g (row stride Wq)
                    _pad_planes(g_t[t, b - b0].reshape(-1), 0, tr, wq, oc, oh, ow, dp, qh, qw, tail_dy)
                else:
                    _pad_planes(dyf, b * oc * oh * ow, oh * ow, ow, oc, oh, ow, dp, qh, qw, tail_dy)
                for f in range(phases.shape[0]):
                    kf, rows, cols, y0, x0, trd = (phases[f, 0], phases[f, 1], phases[f, 2], phases[f, 3],
                                                   phases[f, 4], phases[f, 5])
                    dxe = de[:cp * trd].reshape(cp, trd)
                    _tiles(dp, wd[f], kf, offs_dx[f], dxe)
                    for ch in range(c):
                        for r in range(rows):
                            src = U(ch * trd + r * wg)
                            dst = U(((b * c + ch) * h + y0 + sh * r) * w + x0)
                            for s in range(U(cols)):
                                dxf[dst + U(sw) * s] = de[src + s]


def tap_offsets(c, kh, kw, hq, wq, sh, sw, count):
    """offs[k] for k = (c, i, j) in C order (see the module docstring), then zero offsets up to
    ``count``."""
    i, j = np.divmod(np.arange(kh * kw), kw)
    plane = (np.arange(c)[:, None] * sh + i % sh) * sw + j % sw
    taps = (plane * (hq * wq) + (i // sh) * wq + j // sw).reshape(-1)
    return np.concatenate([taps, np.zeros(count - taps.size, np.int64)]).astype(np.int64)


def geometry(x_shape, kh, kw, sh, sw, ph, pw, dtype):
    """(Hq, Wq, OH, Tr, size): the phase planes' height and width, the output rows, the padded-width
    outputs in whole tiles, and the length of an image's planes with their tail."""
    c, h, w = x_shape[1:]
    hp, wp = h + 2 * ph, w + 2 * pw
    hq, wq = -(-hp // sh), -(-wp // sw)
    oh = (hp - kh) // sh + 1
    tr = ceil_to(oh * wq, lanes(dtype) * NV)  # whole tiles
    return hq, wq, oh, tr, c * sh * sw * hq * wq + (tr - oh * wq) + kw + lanes(dtype)


@functools.lru_cache(maxsize=64)
def dx_plan(oc, c, kh, kw, sh, sw, ph, pw, h, w, oh, ow, step, cp):
    """The dx passes, one per phase (a, b), as functions of the shapes only (cached): dy padded by
    (qh, qw) on all sides (the most any phase needs); per phase (K, rows, cols, first row of x,
    first column of x, padded-width outputs in whole tiles); its tap offsets into padded dy (K
    of them, then zeros); and where its flipped sub-kernel's (K, C) tile weights lie in W's flat
    array (W.size for the zeros that pad K and C). Phase a's rows u (x's rows sh·u + a − ph,
    inside x) start at u0 = ⌈(ph − a)/sh⌉; its tap i' (kernel row sh·i' + a) reads padded dy's row
    u − u0 + (u0 + qh − i')."""

    def cut(k, s, p, n, o):  # per phase: taps, first u, rows inside x; and the padding needed
        out, pad = [], 0
        for a in range(s):
            taps = -(-(k - a) // s)
            u0 = -((a - p) // s) if p > a else 0
            u1 = -(-(p + n - a) // s)
            out.append((taps, u0, u1 - u0, s * u0 + a - p))
            pad = max(pad, taps - 1 - u0, u1 - o)
        return out, pad

    rows_cut, qh = cut(kh, sh, ph, h, oh)
    cols_cut, qw = cut(kw, sw, pw, w, ow)
    hg, wg = oh + 2 * qh, ow + 2 * qw
    kmax = oc * rows_cut[0][0] * cols_cut[0][0]  # phase (0, 0) has the most taps
    n = len(rows_cut) * len(cols_cut)
    phases = np.zeros((n, 6), np.int64)
    offs = np.zeros((n, kmax), np.int64)
    gather = np.full((n, kmax, cp), oc * c * kh * kw, np.int64)
    o, ch = np.arange(oc)[:, None, None, None], np.arange(c)
    for a, (ka, u0, rows, y0) in enumerate(rows_cut):
        for b, (kb, v0, cols, x0) in enumerate(cols_cut):
            f = a * sw + b
            i = np.arange(ka)[::-1]  # taps in increasing offset, as the stride-1 flipped kernel
            j = np.arange(kb)[::-1]
            k = oc * ka * kb
            phases[f] = (k, rows, cols, y0, x0, ceil_to(max(rows, 1) * wg, step))
            offs[f, :k] = (o[..., 0] * (hg * wg) + ((u0 + qh - i) * wg)[:, None] + (v0 + qw - j)).reshape(-1)
            at = ((o * c + ch) * kh + (a + sh * i)[:, None, None]) * kw + (b + sw * j)[:, None]
            gather[f, :k, :c] = at.reshape(k, c)  # tap (o, i, j) × channel: W[o, ch, a + sh·i, b + sw·j]
    return qh, qw, phases, offs, np.ascontiguousarray(gather.reshape(n, kmax, cp // MR, MR).transpose(0, 2, 1, 3))


def dx_weights(weight, gather, scratch):
    """The flipped sub-kernels of the dx passes in the tiles' layout: W's values at ``gather``
    (dx_plan's), where W.size stands for the zero that pads taps and channels."""
    flat = scratch.get("direct_w_flat", (weight.size + 1,), weight)
    flat[:-1] = weight.reshape(-1)
    flat[-1] = 0
    wd = scratch.get("direct_wd", gather.shape, weight)
    np.take(flat, gather, out=wd)
    return wd


def packed_weights(weight, scratch):
    """W (OC, C, kh, kw) in the fma tiles' layout: wf[blk, k, m] = W[blk·MR + m, k] (OCp / MR, K,
    MR), the channels past OC zero; each tile reads its weights in order."""
    oc, k = weight.shape[0], weight[0].size
    ocp = ceil_to(oc, MR)
    rows = scratch.get("direct_w_rows", (ocp, k), weight)
    rows[:oc] = weight.reshape(oc, k)
    rows[oc:] = 0
    wf = scratch.get("direct_w", (ocp // MR, k, MR), weight)
    wf[...] = rows.reshape(ocp // MR, MR, k).transpose(0, 2, 1)
    return wf


def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch, nt):
    """y = conv(x, W) + b (ReLU) at stride (sh, sw), in ``nt`` chunks of images."""
    oc, c = weight.shape[:2]
    k = c * kh * kw
    if bias is None:
        bias = scratch.get("zero_bias", (oc,), x)
        bias[...] = 0
    hq, wq, oh, tr, size = geometry(x.shape, kh, kw, sh, sw, ph, pw, x.dtype)
    wf = packed_weights(weight, scratch)
    offs = scratch.get("direct_offs", (k,), x, np.int64)
    offs[:] = tap_offsets(c, kh, kw, hq, wq, sh, sw, k)
    xpad_t = scratch.get("direct_xpad", (nt, size), x)
    yext_t = scratch.get("direct_yext", (nt, wf.shape[0] * MR, tr), x)
    _forward(x, wf, bias, y, xpad_t, yext_t, offs, sh, sw, ph, pw, hq, wq, bool(relu), x.dtype.type(0))


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch, nt):
    """dW, db (when given) and dx (when given) of conv_forward, in at most ``nt`` chunks: fewer
    for small images, so that a chunk's dot products run over ``DW_COLUMNS`` or more padded-width
    outputs (each dot tile ends in MA·KB sums across its vectors' lanes; measured at batch 64 on two
    cores, 64→64 on 7×7: 16 chunks 2.41 ms, 4 chunks 1.88 ms)."""
    oc, c = weight.shape[:2]
    k = c * kh * kw
    hq, wq, oh, tr, size = geometry(x.shape, kh, kw, sh, sw, ph, pw, dy.dtype)
    ow = dy.shape[3]
    nt = max(1, min(nt, x.shape[0] * tr // DW_COLUMNS))
    ocp, kp = ceil_to(oc, MA), ceil_to(k, KB)
    offs = scratch.get("direct_offs_dw", (kp,), dy, np.int64)
    offs[:] = tap_offsets(c, kh, kw, hq, wq, sh, sw, kp)
    per = -(-x.shape[0] // nt)  # images per chunk, at most
    xpad_t = scratch.get("direct_xpad", (nt, per, size), dy)
    g_t = scratch.get("direct_g", (nt, per, ocp, tr), dy)
    dw_t = scratch.get("direct_dw", (nt, ocp, kp), dy)
    db_t = scratch.get("direct_db", (nt, oc), dy, np.float64)
    need_dx = dx is not None
    if need_dx:
        qh, qw, phases, offs_dx, gather = dx_plan(oc, c, kh, kw, sh, sw, ph, pw, x.shape[2], x.shape[3], oh, ow,
                                                   lanes(dy.dtype) * NV, ceil_to(c, MR))
        wd = dx_weights(weight, gather, scratch)
        cp, trd = gather.shape[1] * MR, int(phases[:, 5].max())
        size_dy = oc * (oh + 2 * qh) * (ow + 2 * qw) + trd + kw + pw + lanes(dy.dtype)
        dypad_t = scratch.get("direct_dypad", (nt, size_dy), dy)
        dxext_t = scratch.get("direct_dxext", (nt, cp, trd), dy)
    else:
        qh = qw = 0
        phases = np.zeros((0, 6), np.int64)
        wd = scratch.get("direct_no_wd", (1, 1, 1), dy)
        offs_dx = scratch.get("direct_no_offs", (1, 1), dy, np.int64)
        dypad_t = scratch.get("direct_no_dypad", (nt, 1), dy)
        dxext_t = scratch.get("direct_no_dxext", (nt, 1, 1), dy)
        dx = scratch.get("direct_no_dx", x.shape[:2] + (0, 0), dy)
    masked = relu_y is not None
    _backward(x, dy, relu_y if masked else dy, masked, dw_t, db_t, dx, need_dx, wd, offs, offs_dx, phases, xpad_t,
              g_t, dypad_t, dxext_t, sh, sw, ph, pw, hq, wq, qh, qw, dy.dtype.type(1), dy.dtype.type(0))
    np.sum(dw_t[:, :oc, :k], axis=0, out=dweight.reshape(oc, k))
    if dbias is not None:
        dbias[...] = db_t.sum(axis=0)
