"""Dropout with numba.cuda: one thread per mask byte j (local elements 8j … 8j+7, global
g = offset + 8j) in a grid-stride loop: Philox blocks g div 4 and the next (and a third when
h = g mod 4 ≠ 0; lane l takes word h + l of the three); backward one thread per element. Same
stream and layout as reference.py.
The Philox rounds are kernels/common/philox.py's ``philox4x32_10`` compiled as a device function.
Under NUMBA_ENABLE_CUDASIM=1 the kernels take NumPy arrays; on a GPU, CuPy arrays.
"""
from __future__ import annotations

import numpy as np

from ..common.numba_cuda import cuda
from ..common.philox import MASK32, SHIFT32, dropout_counter_hi, dropout_key, philox4x32_10

THREADS = 128
MAX_BLOCKS = 4096

_philox = cuda.jit(device=True)(philox4x32_10)


@cuda.jit(device=True)
def _put(x, y, i, n, w, threshold, scale, zero):
    """Write y[i] for word w (if i < n); return 1 when element i is kept, else 0."""
    if i >= n:
        return 0
    if w >= threshold:
        y[i] = x[i] * scale
        return 1
    y[i] = x[i] * zero
    return 0


@cuda.jit(device=True)
def _window(l0, l1, l2, l3, h0, h1, h2, h3, s):
    """Words s … s+3 of (l0, l1, l2, l3, h0, h1, h2, h3), 0 <= s < 4."""
    if s == 1:
        return l1, l2, l3, h0
    if s == 2:
        return l2, l3, h0, h1
    if s == 3:
        return l3, h0, h1, h2
    return l0, l1, l2, l3


@cuda.jit
def _forward(x, y, mask, k0, k1, c2, c3, threshold, scale, offset):
    n = x.size
    zero = scale - scale
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for j in range(start, mask.size, stride):
        g = offset + np.uint64(8 * j)
        h = g & np.uint64(3)
        b = g >> np.uint64(2)
        b1 = b + np.uint64(1)
        a0, a1, a2, a3 = _philox(b & MASK32, b >> SHIFT32, c2, c3, k0, k1)
        d0, d1, d2, d3 = _philox(b1 & MASK32, b1 >> SHIFT32, c2, c3, k0, k1)
        if h:
            b2 = b1 + np.uint64(1)
            e0, e1, e2, e3 = _philox(b2 & MASK32, b2 >> SHIFT32, c2, c3, k0, k1)
            a0, a1, a2, a3 = _window(a0, a1, a2, a3, d0, d1, d2, d3, h)
            d0, d1, d2, d3 = _window(d0, d1, d2, d3, e0, e1, e2, e3, h)
        i = 8 * j
        bits = (_put(x, y, i, n, a0, threshold, scale, zero)
                | (_put(x, y, i + 1, n, a1, threshold, scale, zero) << 1)
                | (_put(x, y, i + 2, n, a2, threshold, scale, zero) << 2)
                | (_put(x, y, i + 3, n, a3, threshold, scale, zero) << 3)
                | (_put(x, y, i + 4, n, d0, threshold, scale, zero) << 4)
                | (_put(x, y, i + 5, n, d1, threshold, scale, zero) << 5)
                | (_put(x, y, i + 6, n, d2, threshold, scale, zero) << 6)
                | (_put(x, y, i + 7, n, d3, threshold, scale, zero) << 7))
        mask[j] = np.uint8(bits)


@cuda.jit
def _backward(dy, mask, dx, scale):
    zero = scale - scale
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, dy.size, stride):
        if (mask[i // 8] >> (i % 8)) & 1:
            dx[i] = dy[i] * scale
        else:
            dx[i] = dy[i] * zero


def _blocks(work: int) -> int:
    return max(1, min(MAX_BLOCKS, (work + THREADS - 1) // THREADS))


def forward(x, y, mask, seed, layer_id, step, threshold, scale, offset=0):
    """y = x · m · scale and mask = m packed; see reference.forward."""
    k0, k1 = dropout_key(seed, layer_id)
    c2, c3 = dropout_counter_hi(step)
    u = np.uint64
    mask = mask.reshape(-1)
    _forward[_blocks(mask.size), THREADS](x.reshape(-1), y.reshape(-1), mask, u(k0), u(k1), u(c2), u(c3),
                                          u(threshold), x.dtype.type(scale), u(offset))


def backward(dy, mask, dx, scale):
    """dx = dy · m · scale; see reference.backward."""
    _backward[_blocks(dy.size), THREADS](dy.reshape(-1), mask.reshape(-1), dx.reshape(-1), dy.dtype.type(scale))
