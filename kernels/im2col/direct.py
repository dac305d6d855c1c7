"""Direct 2-D convolution on the CPU at stride 1: every tap reads the zero-padded input in
place, with no column matrix (tiles.py holds the micro-kernels; numba_cpu.py chooses this path,
``supported``).

An image's C planes are zero-padded to Hp × Wp (Hp = H + 2·ph, Wp = W + 2·pw) and laid end to
end in ``xpad``. On the padded width — t = r·Wp + s for output rows r < OH and every s < Wp —

    yext[o, t] = Σ_{c,i,j} W[o, c, i, j] · xpad[c·Hp·Wp + i·Wp + j + t]

so tap k = (c, i, j) is the run of xpad that starts at offs[k] = c·Hp·Wp + i·Wp + j. Columns
s ≥ OW are not outputs: the epilogue drops them while it adds the bias (and applies ReLU), and
the backward zeroes them in its copy of dy. They cost Wp/OW − 1 more multiply-adds (7% on
28×28, 29% on 7×7 with "same" 3×3), against im2col's copy of kh·kw times the input that the BLAS
product then packs once more.

    forward:  yext = fma tiles over (o, t);                      y = crop(yext) + b (ReLU)
    backward: g = dy (· [y > 0]) on the padded width, zero at s ≥ OW; db = Σ g (float64)
              dW[o, k] += Σ_images Σ_t g[o, t] · xpad[offs[k] + t]   (dot tiles, per chunk)
              dx = the same forward on g padded by (kh − 1 − ph, kw − 1 − pw), with the kernel
                   flipped and C, OC swapped (so ph < kh and pw < kw)

The batch is cut into chunks of consecutive images (``cpu_conv.chunks``, fewer in the backward
for small images: functions of the shapes only); each chunk's dW is one set of dot products over
its images, the chunks' summed in chunk order: results do not depend on the thread count.
Output channels are padded to a multiple of the tile's rows (MR, or MA for dW) with zero
weights or gradients, taps to a multiple of KB with a zero offset; what the padding computes is
thrown away. Kept per layer in
``scratch``: per chunk its images padded, their padded-width gradients and one partial dW; the
padded-width output of one image (the padded dy and dx for the backward) per chunk; the weights
in the tiles' layout (at batch 64: 10 MB for resnet_small's 16→16 layer on 28×28, 7.0 MB for
dropout_cnn's 32→64 layer on 13×13, which kept 3.9 MB through columns).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..common.jit import njit
from .planes import U
from .tiles import KB, MA, MR, NV, dot_tile, fma_tile, lanes, vector_lanes


MIN_TAPS = 32  # C·kh·kw below which cpu_conv.py's columns and product are faster
DW_COLUMNS = 1024  # padded-width outputs per chunk, at least, for the backward's dW dot products


def supported(c, kh, kw, sh, sw, ph, pw, dtype) -> bool:
    """Whether this path computes the convolution: stride 1, padding below the kernel size, and
    at least ``MIN_TAPS`` taps. (With one input channel, C·kh·kw = 9 for 3×3, a tile's sum is too
    short to pay for the padding and epilogue passes: measured at batch 64 on two cores, 1→32 on
    28×28 took 0.25/0.65 ms forward/backward through columns and 0.31/0.73 ms direct.)"""
    return (sh == 1 and sw == 1 and ph < kh and pw < kw and c * kh * kw >= MIN_TAPS
            and np.dtype(dtype) in (np.float32, np.float64))


def _ceil(a, b):
    return -(-a // b) * b


@njit(fastmath=False, cache=True, inline="always")
def _pad_planes(src, sb, ps, rs, c, h, w, dst, ph, pw, tail):
    """dst = c planes of h rows of w values (row r of plane ch at src[sb + ch·ps + r·rs]),
    zero-padded by (ph, pw) and laid end to end, then ``tail`` zeros (the runs of the last taps
    read past the last plane)."""
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
def _tiles(xp, wf, offs, yext):
    """yext (OCp, Tr) = the fma tiles of the padded image xp with weights wf (K, OCp)."""
    k, ocp = wf.shape
    tr = yext.shape[1]
    step = vector_lanes(xp) * NV  # outputs per tile
    isz = xp.itemsize
    for o0 in range(0, ocp, MR):
        for t0 in range(0, tr, step):
            fma_tile(xp, xp.ctypes.data + isz * t0, wf.ctypes.data + isz * o0, offs.ctypes.data, k, ocp,
                     yext.ctypes.data + isz * (o0 * tr + t0), tr)


@njit(parallel=True, fastmath=False, cache=True)
def _forward(x, wf, bias, y, xpad_t, yext_t, offs, ph, pw, relu, zero):
    n, c, h, w = x.shape
    oc, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    wp = w + 2 * pw
    nt = xpad_t.shape[0]
    tail = xpad_t.shape[1] - c * (h + 2 * ph) * wp
    tr = yext_t.shape[2]
    xf, yf = x.reshape(-1), y.reshape(-1)
    for t in prange(nt):
        xp = xpad_t[t]
        ye = yext_t[t]
        ef = ye.reshape(-1)
        for b in range(n * t // nt, n * (t + 1) // nt):
            _pad_planes(xf, b * c * h * w, h * w, w, c, h, w, xp, ph, pw, tail)
            _tiles(xp, wf, offs, ye)
            for o in range(oc):
                bo = bias[o]
                for r in range(oh):
                    src = U(o * tr + r * wp)
                    dst = U(((b * oc + o) * oh + r) * ow)
                    for s in range(U(ow)):
                        v = ef[src + s] + bo
                        yf[dst + s] = (zero if v <= 0 else v) if relu else v


@njit(parallel=True, fastmath=False, cache=True)
def _backward(x, dy, mask, masked, dw_t, db_t, dx, need_dx, wd, offs, offs_dx, xpad_t, g_t, dypad_t, dxext_t,
              ph, pw, qh, qw, one, zero):
    n, c, h, w = x.shape
    oc, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    wp = w + 2 * pw
    wq = ow + 2 * qw  # dy's padded width (the dx pass's "input")
    nt = xpad_t.shape[0]
    tail = xpad_t.shape[2] - c * (h + 2 * ph) * wp
    tail_dy = dypad_t.shape[1] - oc * (oh + 2 * qh) * wq
    ocp, tr = g_t.shape[2], g_t.shape[3]
    kp = dw_t.shape[2]
    step = vector_lanes(x)
    isz = x.itemsize
    xf, dyf, mf, dxf = x.reshape(-1), dy.reshape(-1), mask.reshape(-1), dx.reshape(-1)
    size = xpad_t.shape[2]
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
                    at = U(o * tr + r * wp)
                    for s in range(U(ow)):
                        v = dyf[src + s] * (one if mf[src + s] > 0 else zero) if masked else dyf[src + s]
                        gf[at + s] = v
                        s_ += v
                dbt[o] += s_
            _pad_planes(xf, b * c * h * w, h * w, w, c, h, w, xpad_t[t, b - b0], ph, pw, tail)
        g0, x0 = g_t[t].ctypes.data, xpad_t[t].ctypes.data
        for o0 in range(0, ocp, MA):
            for k0 in range(0, kp, KB):  # dW over the chunk's images, in image order
                dot_tile(x, g0 + isz * o0 * tr, tr, x0, offs.ctypes.data + 8 * k0, tr // step,
                         dwt.ctypes.data + isz * (o0 * kp + k0), kp, b1 - b0, ocp * tr, size)
        for b in range(b0, b1):
            gf = g_t[t, b - b0].reshape(-1)
            if need_dx:
                dp = dypad_t[t]
                de = dxext_t[t]
                if masked:  # dx reads the masked gradient: its rows from g (row stride Wp)
                    _pad_planes(gf, 0, tr, wp, oc, oh, ow, dp, qh, qw, tail_dy)
                else:
                    _pad_planes(dyf, b * oc * oh * ow, oh * ow, ow, oc, oh, ow, dp, qh, qw, tail_dy)
                _tiles(dp, wd, offs_dx, de)
                trd = de.shape[1]
                df = de.reshape(-1)
                for ch in range(c):
                    for r in range(h):
                        src = U(ch * trd + r * wq)
                        dst = U(((b * c + ch) * h + r) * w)
                        for s in range(U(w)):
                            dxf[dst + s] = df[src + s]


def _taps(c, kh, kw, hp, wp, count):
    """offs[k] for k = (c, i, j) in C order, then zero offsets up to ``count``."""
    i, j = np.divmod(np.arange(kh * kw), kw)
    taps = (np.arange(c)[:, None] * (hp * wp) + (i * wp + j)[None, :]).reshape(-1)
    return np.concatenate([taps, np.zeros(count - taps.size, np.int64)]).astype(np.int64)


def _geometry(x_shape, kh, kw, ph, pw, dtype):
    c, h, w = x_shape[1:]
    hp, wp = h + 2 * ph, w + 2 * pw
    oh = hp - kh + 1
    n = lanes(dtype)
    tr = _ceil(oh * wp, n * NV)  # whole tiles
    return hp, wp, oh, tr, c * hp * wp + (tr - oh * wp) + kw + n  # the padded image with its tail


def conv_forward(x, weight, bias, y, kh, kw, ph, pw, relu, scratch, nt):
    """y = conv(x, W) + b (ReLU) at stride 1, in ``nt`` chunks of images."""
    oc, c = weight.shape[:2]
    k = c * kh * kw
    if bias is None:
        bias = scratch.get("zero_bias", (oc,), x)
        bias[...] = 0
    hp, wp, oh, tr, size = _geometry(x.shape, kh, kw, ph, pw, x.dtype)
    ocp = _ceil(oc, MR)
    wf = scratch.get("direct_w", (k, ocp), x)
    wf[:, :oc] = weight.reshape(oc, k).T
    wf[:, oc:] = 0
    offs = scratch.get("direct_offs", (k,), x, np.int64)
    offs[:] = _taps(c, kh, kw, hp, wp, k)
    xpad_t = scratch.get("direct_xpad", (nt, size), x)
    yext_t = scratch.get("direct_yext", (nt, ocp, tr), x)
    _forward(x, wf, bias, y, xpad_t, yext_t, offs, ph, pw, bool(relu), x.dtype.type(0))


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, ph, pw, scratch, nt):
    """dW, db (when given) and dx (when given) of conv_forward, in at most ``nt`` chunks: fewer
    for small images, so that a chunk's dot products run over ``DW_COLUMNS`` or more padded-width
    outputs (each dot tile ends in MA·KB sums across its vectors' lanes; measured at batch 64 on two
    cores, 64→64 on 7×7: 16 chunks 2.41 ms, 4 chunks 1.88 ms)."""
    oc, c = weight.shape[:2]
    k = c * kh * kw
    hp, wp, oh, tr, size = _geometry(x.shape, kh, kw, ph, pw, dy.dtype)
    nt = max(1, min(nt, x.shape[0] * tr // DW_COLUMNS))
    ocp, kp = _ceil(oc, MA), _ceil(k, KB)
    offs = scratch.get("direct_offs_dw", (kp,), dy, np.int64)
    offs[:] = _taps(c, kh, kw, hp, wp, kp)
    per = -(-x.shape[0] // nt)  # images per chunk, at most
    xpad_t = scratch.get("direct_xpad", (nt, per, size), dy)
    g_t = scratch.get("direct_g", (nt, per, ocp, tr), dy)
    dw_t = scratch.get("direct_dw", (nt, ocp, kp), dy)
    db_t = scratch.get("direct_db", (nt, oc), dy, np.float64)
    qh, qw = kh - 1 - ph, kw - 1 - pw
    need_dx = dx is not None
    if need_dx:  # dx = conv(dy padded by (qh, qw), the flipped kernel with C and OC swapped)
        kd = oc * kh * kw
        _, _, _, trd, size_dy = _geometry(dy.shape, kh, kw, qh, qw, dy.dtype)
        cp = _ceil(c, MR)
        wd = scratch.get("direct_wd", (kd, cp), dy)
        wd[:, :c] = weight[:, :, ::-1, ::-1].reshape(oc, c, kh * kw).transpose(0, 2, 1).reshape(kd, c)
        wd[:, c:] = 0
        offs_dx = scratch.get("direct_offs_dx", (kd,), dy, np.int64)
        offs_dx[:] = _taps(oc, kh, kw, dy.shape[2] + 2 * qh, dy.shape[3] + 2 * qw, kd)
        dypad_t = scratch.get("direct_dypad", (nt, size_dy), dy)
        dxext_t = scratch.get("direct_dxext", (nt, cp, trd), dy)
    else:
        wd = scratch.get("direct_no_wd", (1, 1), dy)
        offs_dx = scratch.get("direct_no_offs", (1,), dy, np.int64)
        dypad_t = scratch.get("direct_no_dypad", (nt, 1), dy)
        dxext_t = scratch.get("direct_no_dxext", (nt, 1, 1), dy)
        dx = scratch.get("direct_no_dx", x.shape[:2] + (0, 0), dy)
    masked = relu_y is not None
    t = dy.dtype.type
    _backward(x, dy, relu_y if masked else dy, masked, dw_t, db_t, dx, need_dx, wd, offs, offs_dx, xpad_t, g_t,
              dypad_t, dxext_t, ph, pw, qh, qw, t(1), t(0))
    np.sum(dw_t[:, :oc, :k], axis=0, out=dweight.reshape(oc, k))
    if dbias is not None:
        dbias[...] = db_t.sum(axis=0)
