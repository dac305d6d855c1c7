"""Direct 2-D convolution on the CPU with the batch in the vector lanes, for small outputs
(numba_cpu.py chooses it, ``chosen``).

direct.py computes a tile's outputs at consecutive positions of the padded width: on the 7×7
output of a "same" 3×3 convolution it computes 64 positions per image (9 columns a row, in
whole tiles) and keeps 49. Here a vector holds one position of G consecutive images instead
(G = the fma tile's NV·L, 16 float32 with AVX-512), so every computed output is kept but those
of the missing images of a last, partial group. A group of G images is laid out as

    xg[(c·sh + a)·sw + b, u, v, i] = xpad[g0 + i, c, sh·u + a, sw·v + b]      (0 for images past N)

(direct.py's phase planes, each value widened to G lanes) and, with direct.py's tap offsets
times G, offs[k] = G·((c·sh + i mod sh)·sw + j mod sw)·Hq·Wq + G·((i // sh)·Wq + j // sw):

    forward:  yg[o, r, s, :] = Σ_k W[o, k] · xg[offs[k] + G·(r·Wq + s) + (0 … G−1)]
              (one fma tile per MR channels and position);   y = yg + b (ReLU), in NCHW
    backward: g[o, r, s, i] = dy[g0 + i, o, r, s] (· [y > 0]);  db = Σ g (float64)
              dW[o, k] += Σ_r Σ_{s, i} g[o, r, s, i] · xg[offs[k] + G·r·Wq + (s·G + i)]
              (a dot tile per MA × KB, its "images" the output rows);
              dx: direct.py's phases, each a stride-1 convolution of g padded by (qh, qw) with
                  the flipped sub-kernel, one fma tile per MR channels and position

The same tiles as direct.py (tiles.py), whose sums run in the same order: the forward and dx
give direct.py's bits; dW and db may round differently (a dot tile sums a group's images in
its lanes). The parallel loops run over (group, channel block) pairs, each group's dW and db
are partial sums added in group order: results do not depend on the thread count. Kept per layer in ``scratch``: every group's
xg, yg and g (and for dx the padded g and the outputs per group), the group partials of dW and
db; at batch 64, 6.3 MB for resnet_small's 64→64 layer on 7×7 (direct.py: 4.0 MB), 9.3 MB for
its 32→32 layer on 14×14 (6.3 MB).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import prange

from ..common.jit import njit
from .direct import ceil_to, dx_plan, dx_weights, geometry, packed_weights, tap_offsets
from .planes import U
from .tiles import KB, MA, MR, NV, dot_tile, fma_tile, lanes, vector_lanes

# how many times the outputs computed here direct.py must compute before this path is chosen: at
# stride 1, and above (widening a strided input reads sh·sw values per output)
GAIN, STRIDED_GAIN = 9 / 8, 5 / 4


def group_size(dtype) -> int:
    """Images per group: the fma tile's NV·L lanes."""
    return NV * lanes(dtype)


def chosen(x_shape, kh, kw, sh, sw, ph, pw, dtype) -> bool:
    """Whether to take this path for a convolution that direct.py can compute: when direct.py
    computes GAIN (STRIDED_GAIN at a stride above 1) times the outputs this path computes or more,
    N·Tr against ⌈N/G⌉·G·OH·OW (Tr: direct.py's padded-width outputs per image), since widening
    the input and the NCHW epilogue cost more here. A function of the shapes only. Measured at
    batch 64 on two cores, forward / backward ms, direct → here: 64→64 on 7×7 (1.31× the
    outputs) 1.78 / 3.60 → 1.41 / 2.76; 32→64 at stride 2 to 7×7 (1.31×) 1.10 / 2.18 → 0.90 /
    1.79; 32→32 on 14×14 (1.14×) 1.45 / 3.08 → 1.42 / 2.65; but 16→32 at stride 2 to 14×14
    (1.14×) 1.09 / 2.09 → 1.25 / 1.98."""
    n = x_shape[0]
    _, _, oh, tr, _ = geometry(x_shape, kh, kw, sh, sw, ph, pw, dtype)
    ow = (x_shape[3] + 2 * pw - kw) // sw + 1
    g = group_size(dtype)
    gain = GAIN if sh == sw == 1 else STRIDED_GAIN
    return n * tr >= gain * -(-n // g) * g * oh * ow


@njit(fastmath=False, cache=True, inline="always")
def _widen(xf, n, c, h, w, g0, dst, sh, sw, ph, pw, hq, wq, G):
    """dst = xg of images g0 … g0 + G − 1 (zeros for images past n)."""
    m = min(G, n - g0)
    img = U(c * h * w)
    for ch in range(c):
        for a in range(sh):
            for u in range(hq):
                r = sh * u + a - ph
                for bb in range(sw):
                    first = U((((ch * sh + a) * sw + bb) * hq + u) * wq * G)
                    if not 0 <= r < h:
                        for q in range(U(wq * G)):
                            dst[first + q] = 0
                        continue
                    src = U(((g0 * c + ch) * h + r) * w)
                    for v in range(wq):
                        col = sw * v + bb - pw
                        at = first + U(v * G)
                        if 0 <= col < w:
                            for i in range(U(m)):
                                dst[at + i] = xf[src + i * img + U(col)]
                            for i in range(U(m), U(G)):
                                dst[at + i] = 0
                        else:
                            for i in range(U(G)):
                                dst[at + i] = 0


@njit(fastmath=False, cache=True, inline="always")
def _tiles(src, w, blk, k, offs, rows, cols, width, out, G):
    """out[MR channels of block blk, r, s, :] = the fma tile at position (r, s) of src (rows of
    ``width`` positions), for r < rows, s < cols; out is (channels, rows·cols·G)."""
    isz = src.itemsize
    p = rows * cols
    wb = w.ctypes.data + isz * blk * w.shape[1] * MR
    for r in range(rows):
        for s in range(cols):
            fma_tile(src, src.ctypes.data + isz * G * (r * width + s), wb, offs.ctypes.data, k, MR,
                     out.ctypes.data + isz * (blk * MR * p + r * cols + s) * G, p * G)


@njit(parallel=True, fastmath=False, cache=True)
def _forward(x, wf, bias, y, xg_t, yg_t, offs, sh, sw, ph, pw, hq, wq, relu, zero):
    n, c, h, w = x.shape
    oc, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    ng, p = xg_t.shape[0], oh * ow
    G = yg_t.shape[2] // p
    nblk = wf.shape[0]
    xf, yf = x.reshape(-1), y.reshape(-1)
    for t in prange(ng):
        _widen(xf, n, c, h, w, t * G, xg_t[t], sh, sw, ph, pw, hq, wq, G)
    for job in prange(ng * nblk):
        t, blk = job // nblk, job % nblk
        yg = yg_t[t]
        _tiles(xg_t[t], wf, blk, wf.shape[1], offs, oh, ow, wq, yg, G)
        ygf = yg.reshape(-1)
        g0 = t * G
        for i in range(min(G, n - g0)):
            for o in range(blk * MR, min(oc, (blk + 1) * MR)):
                bo = bias[o]
                dst = U(((g0 + i) * oc + o) * p)
                src = U(o * p * G + i)
                for q in range(U(p)):
                    v = ygf[src + q * U(G)] + bo
                    yf[dst + q] = (zero if v <= 0 else v) if relu else v


@njit(parallel=True, fastmath=False, cache=True)
def _backward(x, dy, mask, masked, dw_t, db_t, dx, need_dx, wd, offs, offs_dx, phases, xg_t, g_t, gp_t, dxg_t,
              sh, sw, ph, pw, hq, wq, qh, qw, one, zero):
    n, c, h, w = x.shape
    oc, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    ng, ocp, p = g_t.shape[0], g_t.shape[1], oh * ow
    G = g_t.shape[2] // p
    kp = dw_t.shape[2]
    hg, wg = oh + 2 * qh, ow + 2 * qw
    isz = x.itemsize
    step = vector_lanes(x)
    xf, dyf, mf, dxf = x.reshape(-1), dy.reshape(-1), mask.reshape(-1), dx.reshape(-1)
    img = U(oc * p)
    for t in prange(ng):
        g0 = t * G
        m = min(G, n - g0)
        gf = g_t[t].reshape(-1)
        for o in range(ocp):
            s_ = 0.0
            for q in range(U(p)):
                at = U((o * p) * G) + q * U(G)
                if o < oc:
                    src = U(g0 * oc * p + o * p) + q
                    for i in range(U(m)):
                        v = dyf[src + i * img] * (one if mf[src + i * img] > 0 else zero) if masked else dyf[src + i * img]
                        gf[at + i] = v
                        s_ += v
                    for i in range(U(m), U(G)):
                        gf[at + i] = 0
                else:
                    for i in range(U(G)):
                        gf[at + i] = 0
            if o < oc:
                db_t[t, o] = s_
        _widen(xf, n, c, h, w, g0, xg_t[t], sh, sw, ph, pw, hq, wq, G)
        if need_dx:  # g padded by (qh, qw): the dx passes' input
            gpf = gp_t[t].reshape(-1)
            for o in range(oc):
                for u in range(hg):
                    first = U(((o * hg + u) * wg) * G)
                    r = u - qh
                    if 0 <= r < oh:
                        for q in range(U(qw * G)):
                            gpf[first + q] = 0
                        src = U((o * p + r * ow) * G)
                        for q in range(U(ow * G)):
                            gpf[first + U(qw * G) + q] = gf[src + q]
                        for q in range(U((qw + ow) * G), U(wg * G)):
                            gpf[first + q] = 0
                    else:
                        for q in range(U(wg * G)):
                            gpf[first + q] = 0
    nob = ocp // MA
    for job in prange(ng * nob):  # dW, per group and MA output channels
        t, ob = job // nob, job % nob
        dwt = dw_t[t]
        gptr, xptr = g_t[t].ctypes.data, xg_t[t].ctypes.data
        for k0 in range(0, kp, KB):
            for a in range(MA):
                for b in range(KB):
                    dwt[ob * MA + a, k0 + b] = 0
            dot_tile(x, gptr + isz * ob * MA * p * G, p * G, xptr, offs.ctypes.data + 8 * k0, ow * G // step,
                     dwt.ctypes.data + isz * (ob * MA * kp + k0), kp, oh, ow * G, wq * G)
    if need_dx:
        ncb = wd.shape[1]
        for job in prange(ng * ncb):  # dx, per group and MR input channels
            t, cb = job // ncb, job % ncb
            g0 = t * G
            m = min(G, n - g0)
            dxg = dxg_t[t]
            dgf = dxg.reshape(-1)
            for f in range(phases.shape[0]):
                kf, rows, cols, y0, x0 = phases[f, 0], phases[f, 1], phases[f, 2], phases[f, 3], phases[f, 4]
                pf = rows * cols
                _tiles(gp_t[t], wd[f], cb, kf, offs_dx[f], rows, cols, wg, dxg, G)
                for ch in range(cb * MR, min(c, (cb + 1) * MR)):
                    for i in range(m):
                        for r in range(rows):
                            src = U((ch * pf + r * cols) * G + i)
                            dst = U((((g0 + i) * c + ch) * h + y0 + sh * r) * w + x0)
                            for s in range(U(cols)):
                                dxf[dst + U(sw) * s] = dgf[src + s * U(G)]


def _phase_planes(x_shape, sh, sw, ph, pw):
    """(Hq, Wq): the height and width of the phase planes."""
    h, w = x_shape[2], x_shape[3]
    return -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)


@functools.lru_cache(maxsize=64)
def _dx_plan(oc, c, kh, kw, sh, sw, ph, pw, h, w, oh, ow, cp, G):
    """direct.dx_plan with its tap offsets counted in G-lane positions (cached on the shapes)."""
    qh, qw, phases, offs, gather = dx_plan(oc, c, kh, kw, sh, sw, ph, pw, h, w, oh, ow, 1, cp)
    return qh, qw, phases, offs * G, gather


def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    """y = conv(x, W) + b (ReLU) at stride (sh, sw), G images per group."""
    n, c = x.shape[:2]
    oc = weight.shape[0]
    k = c * kh * kw
    if bias is None:
        bias = scratch.get("zero_bias", (oc,), x)
        bias[...] = 0
    G = group_size(x.dtype)
    hq, wq = _phase_planes(x.shape, sh, sw, ph, pw)
    oh, ow = y.shape[2], y.shape[3]
    wf = packed_weights(weight, scratch)
    offs = scratch.get("lanes_offs", (k,), x, np.int64)
    offs[:] = tap_offsets(c, kh, kw, hq, wq, sh, sw, k) * G
    ng = -(-n // G)
    xg_t = scratch.get("lanes_xg", (ng, c * sh * sw * hq * wq * G), x)
    yg_t = scratch.get("lanes_yg", (ng, wf.shape[0] * MR, oh * ow * G), x)
    _forward(x, wf, bias, y, xg_t, yg_t, offs, sh, sw, ph, pw, hq, wq, bool(relu), x.dtype.type(0))


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    """dW, db (when given) and dx (when given) of conv_forward."""
    n, c = x.shape[:2]
    oc, oh, ow = dy.shape[1:]
    k = c * kh * kw
    G = group_size(dy.dtype)
    hq, wq = _phase_planes(x.shape, sh, sw, ph, pw)
    ng = -(-n // G)
    ocp, kp = ceil_to(oc, MA), ceil_to(k, KB)
    offs = scratch.get("lanes_offs_dw", (kp,), dy, np.int64)
    offs[:] = tap_offsets(c, kh, kw, hq, wq, sh, sw, kp) * G
    xg_t = scratch.get("lanes_xg", (ng, c * sh * sw * hq * wq * G), dy)
    g_t = scratch.get("lanes_g", (ng, ocp, oh * ow * G), dy)
    dw_t = scratch.get("lanes_dw", (ng, ocp, kp), dy)
    db_t = scratch.get("lanes_db", (ng, oc), dy, np.float64)
    need_dx = dx is not None
    if need_dx:
        qh, qw, phases, offs_dx, gather = _dx_plan(oc, c, kh, kw, sh, sw, ph, pw, x.shape[2], x.shape[3], oh, ow,
                                                    ceil_to(c, MR), G)
        wd = dx_weights(weight, gather, scratch)
        gp_t = scratch.get("lanes_gpad", (ng, oc * (oh + 2 * qh) * (ow + 2 * qw) * G), dy)
        dxg_t = scratch.get("lanes_dxg", (ng, gather.shape[1] * MR, int((phases[:, 1] * phases[:, 2]).max()) * G), dy)
    else:
        qh = qw = 0
        phases = np.zeros((0, 6), np.int64)
        wd = scratch.get("direct_no_wd", (1, 1, 1, MR), dy)
        offs_dx = scratch.get("direct_no_offs", (1, 1), dy, np.int64)
        gp_t = scratch.get("lanes_no_gpad", (ng, 1), dy)
        dxg_t = scratch.get("lanes_no_dxg", (ng, 1, 1), dy)
        dx = scratch.get("direct_no_dx", x.shape[:2] + (0, 0), dy)
    masked = relu_y is not None
    _backward(x, dy, relu_y if masked else dy, masked, dw_t, db_t, dx, need_dx, wd, offs, offs_dx, phases, xg_t, g_t,
              gp_t, dxg_t, sh, sw, ph, pw, hq, wq, qh, qw, dy.dtype.type(1), dy.dtype.type(0))
    np.sum(dw_t[:, :oc, :k], axis=0, out=dweight.reshape(oc, k))
    if dbias is not None:
        dbias[...] = db_t.sum(axis=0)
