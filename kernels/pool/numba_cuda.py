"""2-D pooling with numba.cuda: a second GPU implementation, run under the CUDA simulator in CI.

Same formulas as ``reference``, same thread mapping as pool.cu: forward kernels take one thread
per output; backward kernels take one thread per input element and gather from the windows that
contain it (for max pooling, those whose recorded argmax is this element), so no atomics.
"""
from __future__ import annotations

from ..common.numba_cuda import cuda

_THREADS = 128


def _blocks(total: int) -> int:
    return max(1, min((total + _THREADS - 1) // _THREADS, 65535))


@cuda.jit
def _max_fwd(x, y, idx, kh, kw, sh, sw, ph, pw):
    nc, h, w = x.shape
    _, oh, ow = y.shape
    i = cuda.grid(1)
    while i < nc * oh * ow:
        q = i % ow
        r = (i // ow) % oh
        t = i // (ow * oh)
        r0 = max(r * sh - ph, 0)
        r1 = min(r * sh - ph + kh, h)
        c0 = max(q * sw - pw, 0)
        c1 = min(q * sw - pw + kw, w)
        best = x[t, r0, c0]
        arg = r0 * w + c0
        for a in range(r0, r1):
            for b in range(c0, c1):
                v = x[t, a, b]
                if v > best or v != v:
                    best = v
                    arg = a * w + b
        y[t, r, q] = best
        idx[t, r, q] = arg
        i += cuda.gridsize(1)


@cuda.jit
def _avg_fwd(x, y, kh, kw, sh, sw, ph, pw, scale):
    nc, h, w = x.shape
    _, oh, ow = y.shape
    i = cuda.grid(1)
    while i < nc * oh * ow:
        q = i % ow
        r = (i // ow) % oh
        t = i // (ow * oh)
        s = 0.0
        for a in range(max(r * sh - ph, 0), min(r * sh - ph + kh, h)):
            for b in range(max(q * sw - pw, 0), min(q * sw - pw + kw, w)):
                s += x[t, a, b]
        y[t, r, q] = s * scale
        i += cuda.gridsize(1)


@cuda.jit(device=True)
def _coords(i, h, w):
    return i // (w * h), (i // w) % h, i % w


@cuda.jit
def _max_bwd(dy, idx, dx, kh, kw, sh, sw, ph, pw):
    nc, h, w = dx.shape
    _, oh, ow = dy.shape
    i = cuda.grid(1)
    while i < nc * h * w:
        t, y, z = _coords(i, h, w)
        acc = dy[0, 0, 0] * 0
        for a in range(kh):
            yy = y + ph - a
            if yy >= 0 and yy % sh == 0 and yy // sh < oh:
                for b in range(kw):
                    zz = z + pw - b
                    if zz >= 0 and zz % sw == 0 and zz // sw < ow:
                        if idx[t, yy // sh, zz // sw] == y * w + z:
                            acc += dy[t, yy // sh, zz // sw]
        dx[t, y, z] = acc
        i += cuda.gridsize(1)


@cuda.jit
def _avg_bwd(dy, dx, kh, kw, sh, sw, ph, pw, scale):
    nc, h, w = dx.shape
    _, oh, ow = dy.shape
    i = cuda.grid(1)
    while i < nc * h * w:
        t, y, z = _coords(i, h, w)
        acc = 0.0
        for a in range(kh):
            yy = y + ph - a
            if yy >= 0 and yy % sh == 0 and yy // sh < oh:
                for b in range(kw):
                    zz = z + pw - b
                    if zz >= 0 and zz % sw == 0 and zz // sw < ow:
                        acc += dy[t, yy // sh, zz // sw]
        dx[t, y, z] = acc * scale
        i += cuda.gridsize(1)


def _planes(a):
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2], a.shape[3])


def maxpool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw):
    _max_fwd[_blocks(y.size), _THREADS](_planes(x), _planes(y), _planes(idx), kh, kw, sh, sw, ph, pw)


def maxpool2d_backward(dy, idx, dx, kh, kw, sh, sw, ph, pw):
    _max_bwd[_blocks(dx.size), _THREADS](_planes(dy), _planes(idx), _planes(dx), kh, kw, sh, sw, ph, pw)


def avgpool2d_forward(x, y, kh, kw, sh, sw, ph, pw, scale):
    _avg_fwd[_blocks(y.size), _THREADS](_planes(x), _planes(y), kh, kw, sh, sw, ph, pw, float(scale))


def avgpool2d_backward(dy, dx, kh, kw, sh, sw, ph, pw, scale):
    _avg_bwd[_blocks(dx.size), _THREADS](_planes(dy), _planes(dx), kh, kw, sh, sw, ph, pw, float(scale))
