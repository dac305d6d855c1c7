"""Dropout with numba.cuda: one thread per mask byte (eight elements, two Philox blocks) in a
grid-stride loop; backward one thread per element. Same stream and layout as reference.py.
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


@cuda.jit
def _forward(x, y, mask, k0, k1, c2, c3, threshold, scale):
    n = x.size
    zero = scale - scale
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for j in range(start, mask.size, stride):
        b = np.uint64(2 * j)
        b1 = b + np.uint64(1)
        a0, a1, a2, a3 = _philox(b & MASK32, b >> SHIFT32, c2, c3, k0, k1)
        d0, d1, d2, d3 = _philox(b1 & MASK32, b1 >> SHIFT32, c2, c3, k0, k1)
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


def forward(x, y, mask, seed, layer_id, step, threshold, scale):
    """y = x · m · scale and mask = m packed; see reference.forward."""
    k0, k1 = dropout_key(seed, layer_id)
    c2, c3 = dropout_counter_hi(step)
    u = np.uint64
    mask = mask.reshape(-1)
    _forward[_blocks(mask.size), THREADS](x.reshape(-1), y.reshape(-1), mask, u(k0), u(k1), u(c2), u(c3),
                                          u(threshold), x.dtype.type(scale))


def backward(dy, mask, dx, scale):
    """dx = dy · m · scale; see reference.backward."""
    _backward[_blocks(dy.size), THREADS](dy.reshape(-1), mask.reshape(-1), dx.reshape(-1), dy.dtype.type(scale))
