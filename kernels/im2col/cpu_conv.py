"""The whole 2-D convolution on the CPU through columns: one Numba parallel region per pass, the
matrix products by BLAS from inside it (kernels/common/blas.py). numba_cpu.py's tier API
(``conv_forward``, ``conv_backward``) runs it for few taps and for kernels smaller than their
stride (1×1 at stride 2); the rest is direct (direct.py).

The batch is cut into T chunks of consecutive images (T = ``chunks(N, OC, K)``, a function of
the shapes only, never of the thread count, so results do not depend on how many threads run),
and each chunk into groups of G consecutive images (G = ``group(P, K)``: 1, except for outputs
of fewer than ``SMALL_OUTPUT`` pixels with a reduction of ``LONG_REDUCTION`` or more, where G
images make a product of about ``GROUP_COLUMNS`` columns — 6 images of 7×7). Each ``prange``
iteration takes one chunk and, per group:

    forward:   cols = im2col(x[group]) (K, G·P), cache-resident;   out = W · cols (one BLAS call:
               straight into the NCHW output y[n] when G = 1, else into a chunk buffer);
               then y = out + b, or max(out + b, 0), in the same pass that leaves the product
    backward:  g = dy[group], or dy·[relu_y > 0] (in a chunk buffer (OC, G·P); dy itself when
               G = 1 without a mask), its row sums added to the chunk's float64 db;
               cols = im2col(x[group]) again;   dW_t += g · colsᵀ (as dW_tᵀ += cols · gᵀ when
               OC < K: OpenBLAS runs that product up to 1.5× faster);
               and unless dx is skipped: cols = Wᵀ · g;  dx[group] = col2im(cols)

then dW = Σ_t dW_t and db = Σ_t db_t in chunk order. No transpose pass over the batch, no
(K, N·P) column matrix and no second thread pool: what stays between passes is the input x
itself (the caller keeps it). Kept per layer in ``scratch``: T·K·G·P columns, T·OC·G·P product
or gradient buffers, T·OC·K partial dW and T·OC float64 partial db (for MNIST's 32→64 3×3 layer
at batch 64: 3.9 MB).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..common import blas
from ..common.blas import NO_TRANS, ROW_MAJOR, TRANS
from ..common.jit import njit
from .planes import col2im_plane, im2col_plane

MAX_CHUNKS = 16
PARTIAL_LIMIT = 1 << 22  # elements of partial dW kept at most (T·OC·K), beyond two chunks
SMALL_OUTPUT = 64        # output pixels per image below which images are grouped ...
LONG_REDUCTION = 256     # ... when K = C·kh·kw is at least this
GROUP_COLUMNS = 256      # columns of a grouped product, at least
MAX_GROUP = 16


def chunks(n: int, oc: int, k: int) -> int:
    """The number of image chunks: up to 16, fewer for few images or a very large OC·K."""
    return max(1, min(n, MAX_CHUNKS, max(2, PARTIAL_LIMIT // max(oc * k, 1))))


def group(p: int, k: int) -> int:
    """Images per matrix product for P output pixels per image and a reduction of K.

    Measured on a 2-core machine (resnet_small, batch 64, each pass alone, three alternating
    runs): 64→64 3×3 on 7×7 (K = 576), six images per product, forward 2.24 → 1.87 ms and
    backward 4.93 → 4.03 ms; 32→64 stride 2 to 7×7 (K = 288) 1.33 → 1.38 and 2.83 → 2.68; but
    16→32 stride 2 to 14×14 (K = 144, two images) 1.22 → 1.46 and 2.94 → 3.07, and a 1×1
    convolution (K = 32) slower too: grouping pays for small outputs with long reductions only.
    """
    if p >= SMALL_OUTPUT or k < LONG_REDUCTION:
        return 1
    return max(1, min(MAX_GROUP, -(-GROUP_COLUMNS // max(p, 1))))


# The BLAS functions are arguments (ctypes function objects, which Numba calls directly), so
# that the compiled loops do not embed an address and can be cached on disk.
@njit(parallel=True, fastmath=False, cache=True)
def _forward(gemm, set_local, x, w2, bias, y3, cols_t, out_t, kh, kw, sh, sw, ph, pw, oh, ow, relu, zero):
    n, c, h, w = x.shape
    oc, k = w2.shape
    p = oh * ow
    nt, _, gp = cols_t.shape
    per = gp // p  # images per group
    xf = x.reshape(-1)
    for t in prange(nt):
        set_local(1)  # the caller restores its setting after the region (blas.single_threaded_products)
        cf = cols_t[t].reshape(-1)
        of = out_t[min(np.int64(t), out_t.shape[0] - 1)].reshape(-1)  # a (1, 1, 1) placeholder when G = 1
        b1 = n * (t + 1) // nt
        for g0 in range(n * t // nt, b1, per):
            g = min(per, b1 - g0)
            m = g * p
            for gi in range(g):
                for ch in range(c):
                    im2col_plane(xf, ((g0 + gi) * c + ch) * h * w, cf, gi * p, m, ch, kh, kw, sh, sw, ph, pw, h, w,
                                 oh, ow)
            direct = g == 1
            dst = y3[g0].ctypes.data if direct else of.ctypes.data
            gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, oc, m, k, 1.0, w2.ctypes.data, k, cols_t[t].ctypes.data, m,
                 0.0, dst, m)
            for gi in range(g):
                for o in range(oc):
                    bo = bias[o]
                    row = y3[g0 + gi, o]
                    at = o * m + gi * p  # this image's row o in the chunk's product
                    if direct:
                        for q in range(p):
                            v = row[q] + bo
                            row[q] = (zero if v <= 0 else v) if relu else v
                    else:
                        for q in range(p):
                            v = of[at + q] + bo
                            row[q] = (zero if v <= 0 else v) if relu else v


@njit(parallel=True, fastmath=False, cache=True)
def _backward(gemm, set_local, x, w2, dy3, mask3, masked, dw_t, db_t, dx, need_dx, cols_t, g_t,
              kh, kw, sh, sw, ph, pw, oh, ow, one, zero, dw_transposed):
    n, c, h, w = x.shape
    oc, k = w2.shape
    p = oh * ow
    nt, _, gp = cols_t.shape
    per = gp // p
    xf = x.reshape(-1)
    dxf = dx.reshape(-1)
    for t in prange(nt):
        set_local(1)
        cf = cols_t[t].reshape(-1)
        gf = g_t[min(np.int64(t), g_t.shape[0] - 1)].reshape(-1)  # a (1, 1, 1) placeholder when never used
        dwt = dw_t[t]
        dbt = db_t[t]
        for o in range(oc):
            dbt[o] = 0.0
        b0 = n * t // nt
        b1 = n * (t + 1) // nt
        if b1 == b0:
            dwt[:] = 0
        for g0 in range(b0, b1, per):
            g = min(per, b1 - g0)
            m = g * p
            direct = g == 1 and not masked  # the product reads dy itself
            for gi in range(g):
                for o in range(oc):
                    s = 0.0
                    src = dy3[g0 + gi, o]
                    if direct:
                        for q in range(p):
                            s += src[q]
                    else:
                        at = o * m + gi * p
                        mr = mask3[g0 + gi, o]
                        for q in range(p):
                            v = src[q] * (one if mr[q] > 0 else zero) if masked else src[q]
                            gf[at + q] = v
                            s += v
                    dbt[o] += s
                for ch in range(c):
                    im2col_plane(xf, ((g0 + gi) * c + ch) * h * w, cf, gi * p, m, ch, kh, kw, sh, sw, ph, pw, h, w,
                                 oh, ow)
            gptr = dy3[g0].ctypes.data if direct else gf.ctypes.data
            cptr = cols_t[t].ctypes.data
            beta = 0.0 if g0 == b0 else 1.0
            if dw_transposed:
                gemm(ROW_MAJOR, NO_TRANS, TRANS, k, oc, m, 1.0, cptr, m, gptr, m, beta, dwt.ctypes.data, oc)
            else:
                gemm(ROW_MAJOR, NO_TRANS, TRANS, oc, k, m, 1.0, gptr, m, cptr, m, beta, dwt.ctypes.data, k)
            if need_dx:
                gemm(ROW_MAJOR, TRANS, NO_TRANS, k, m, oc, 1.0, w2.ctypes.data, k, gptr, m, 0.0, cptr, m)
                for gi in range(g):
                    for ch in range(c):
                        col2im_plane(cf, gi * p, m, dxf, ((g0 + gi) * c + ch) * h * w, ch, kh, kw, sh, sw, ph, pw,
                                     h, w, oh, ow, True)


def _gemm(dtype):
    return blas.BLAS.sgemm if np.dtype(dtype) == np.float32 else blas.BLAS.dgemm


def _out(x_shape, kh, kw, sh, sw, ph, pw):
    h, w = x_shape[2], x_shape[3]
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    """y = conv(x, W) + b (max(·, 0) with relu); needs ``blas.BLAS``."""
    n, c = x.shape[:2]
    oc = weight.shape[0]
    k = c * kh * kw
    oh, ow = _out(x.shape, kh, kw, sh, sw, ph, pw)
    p = oh * ow
    if bias is None:
        bias = scratch.get("zero_bias", (oc,), x)
        bias[...] = 0
    nt, gp = chunks(n, oc, k), group(p, k) * p
    cols_t = scratch.get("cols", (nt, k, gp), x)
    out_t = scratch.get("product", (nt, oc, gp) if gp > p else (1, 1, 1), x)
    with blas.single_threaded_products(blas.BLAS):
        _forward(_gemm(x.dtype), blas.BLAS.set_threads_local, x, weight.reshape(oc, k), bias, y.reshape(n, oc, -1),
                 cols_t, out_t, kh, kw, sh, sw, ph, pw, oh, ow, bool(relu), x.dtype.type(0))


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    """dW, db (when given) and dx (when given) of conv_forward; needs ``blas.BLAS``."""
    n, c = x.shape[:2]
    oc = weight.shape[0]
    k = c * kh * kw
    oh, ow = _out(x.shape, kh, kw, sh, sw, ph, pw)
    p = oh * ow
    nt, gp = chunks(n, oc, k), group(p, k) * p
    dy3 = dy.reshape(n, oc, p)
    masked = relu_y is not None
    mask3 = relu_y.reshape(n, oc, p) if masked else dy3
    transposed = oc < k  # dWᵀ = cols·gᵀ: OpenBLAS runs this product faster than g·colsᵀ when OC < K
    dw_t = scratch.get("dw_partial", (nt, k, oc) if transposed else (nt, oc, k), dy)
    db_t = scratch.get("db_partial", (nt, oc), dy, np.float64)
    cols_t = scratch.get("cols", (nt, k, gp), dy)
    g_t = scratch.get("product", (nt, oc, gp) if masked or gp > p else (1, 1, 1), dy)
    t = dy.dtype.type
    with blas.single_threaded_products(blas.BLAS):
        _backward(_gemm(dy.dtype), blas.BLAS.set_threads_local, x, weight.reshape(oc, k), dy3, mask3, masked, dw_t,
                  db_t, dx if dx is not None else scratch.get("no_dx", x.shape[:2] + (0, 0), dy), dx is not None,
                  cols_t, g_t, kh, kw, sh, sw, ph, pw, oh, ow, t(1), t(0), transposed)
    np.sum(dw_t, axis=0, out=dweight.reshape(oc, k).T if transposed else dweight.reshape(oc, k))
    if dbias is not None:
        dbias[...] = db_t.sum(axis=0)
