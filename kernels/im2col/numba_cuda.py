"""im2col / col2im with numba.cuda: a second GPU implementation, run under the CUDA simulator in CI.

Same formulas as ``reference``; same thread mapping as im2col.cu (one thread per output
element in grid-stride loops; col2im gathers, so no atomics). The wrappers take device arrays
(CuPy arrays, or NumPy arrays under NUMBA_ENABLE_CUDASIM=1).
"""
from __future__ import annotations

from numba import float64

from ..common.numba_cuda import block_sum, cuda
from .composed import backward_with, forward_with

_THREADS = 128


def _blocks(total: int) -> int:
    return max(1, min((total + _THREADS - 1) // _THREADS, 65535))


@cuda.jit
def _im2col(x, cols, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = x.shape
    p = oh * ow
    m = n * p
    total = cols.shape[0] * m
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < total:
        col = idx % m
        row = idx // m
        j = row % kw
        i = (row // kw) % kh
        ch = row // (kw * kh)
        q = col % ow
        r = (col // ow) % oh
        b = col // p
        ih = r * sh + i - ph
        iw = q * sw + j - pw
        if ih >= 0 and ih < h and iw >= 0 and iw < w:
            cols[row, col] = x[b, ch, ih, iw]
        else:
            cols[row, col] = 0
        idx += stride


@cuda.jit
def _col2im(cols, dx, kh, kw, sh, sw, ph, pw, oh, ow):
    n, c, h, w = dx.shape
    p = oh * ow
    total = n * c * h * w
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < total:
        z = idx % w
        y = (idx // w) % h
        ch = (idx // (w * h)) % c
        b = idx // (w * h * c)
        acc = cols[0, 0] * 0
        for i in range(kh):
            yy = y + ph - i
            if yy >= 0 and yy % sh == 0 and yy // sh < oh:
                r = yy // sh
                for j in range(kw):
                    zz = z + pw - j
                    if zz >= 0 and zz % sw == 0 and zz // sw < ow:
                        acc += cols[(ch * kh + i) * kw + j, b * p + r * ow + zz // sw]
        dx[b, ch, y, z] = acc
        idx += stride


@cuda.jit
def _cnhw_to_nchw(yc, bias, y3, relu):
    n, c, p = y3.shape
    total = n * c * p
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < total:
        k = idx % p
        ch = (idx // p) % c
        b = idx // (p * c)
        v = yc[ch, b * p + k] + bias[ch]
        if relu and v <= 0:  # max(v, 0) as numpy.maximum: NaN kept
            v = 0
        y3[b, ch, k] = v
        idx += stride


@cuda.jit
def _nchw_to_cnhw(dy3, dyc, mask3, masked):
    n, c, p = dy3.shape
    m = n * p
    total = c * m
    idx = cuda.grid(1)
    stride = cuda.gridsize(1)
    while idx < total:
        col = idx % m
        ch = idx // m
        v = dy3[col // p, ch, col % p]
        if masked:
            v = v * (1 if mask3[col // p, ch, col % p] > 0 else 0)
        dyc[ch, col] = v
        idx += stride


@cuda.jit
def _channel_sum(dyc, dbias):
    """dbias[ch] = Σ dyc[ch, :]: one block of _THREADS threads per channel, strided partial sums,
    then a tree in shared memory (float64 for either input dtype)."""
    m = dyc.shape[1]
    part = cuda.shared.array(_THREADS, dtype=float64)
    ch = cuda.blockIdx.x
    t = cuda.threadIdx.x
    acc = 0.0
    k = t
    while k < m:
        acc += dyc[ch, k]
        k += cuda.blockDim.x
    total = block_sum(part, t, acc, _THREADS)
    if t == 0:
        dbias[ch] = total


def _out(h, w, kh, kw, sh, sw, ph, pw):
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def im2col(x, cols, kh, kw, sh, sw, ph, pw):
    oh, ow = _out(x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw)
    _im2col[_blocks(cols.size), _THREADS](x, cols, kh, kw, sh, sw, ph, pw, oh, ow)


def col2im(cols, dx, kh, kw, sh, sw, ph, pw):
    oh, ow = _out(dx.shape[2], dx.shape[3], kh, kw, sh, sw, ph, pw)
    _col2im[_blocks(dx.size), _THREADS](cols, dx, kh, kw, sh, sw, ph, pw, oh, ow)


def cnhw_to_nchw(yc, bias, y, relu=False):
    y3 = y.reshape(y.shape[0], y.shape[1], -1)
    _cnhw_to_nchw[_blocks(y.size), _THREADS](yc, bias, y3, bool(relu))


def nchw_to_cnhw(dy, dyc, dbias, relu_y=None):
    dy3 = dy.reshape(dy.shape[0], dy.shape[1], -1)
    mask3 = dy3 if relu_y is None else relu_y.reshape(dy3.shape)
    _nchw_to_cnhw[_blocks(dy.size), _THREADS](dy3, dyc, mask3, relu_y is not None)
    _channel_sum[dy.shape[1], _THREADS](dyc, dbias)


def conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch):
    forward_with(im2col, cnhw_to_nchw, x, weight, bias, y, kh, kw, sh, sw, ph, pw, relu, scratch)


def conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch):
    backward_with(nchw_to_cnhw, col2im, x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw, scratch)
