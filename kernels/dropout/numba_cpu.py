"""Dropout on the CPU with Numba: one fused pass per chunk of ``CHUNK`` elements.

Same stream and mask layout as reference.py. Per chunk (local start s, global start
g = offset + s): Philox blocks g div 4 … → a keep nibble per block of four elements (vectorizes
across blocks), shifted to the chunk's elements when g mod 4 = h ≠ 0 (local nibble
k = (gn[k] | gn[k+1] << 4) >> h & 15), then y = x · table[nibble] (table[t, l] = scale if bit l
of t is set, else 0) and mask byte j = nibble 2j | nibble 2j+1 << 4. Backward:
dx = dy · table8[mask byte]. Chunks start on multiples of 8 elements, so each owns whole bytes.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import prange

from ..common.philox import MASK32, SHIFT32, dropout_counter_hi, dropout_key, philox_njit
from ..common.threads import parallel_njit, serial_below

SERIAL_BELOW = 1 << 18  # elements: smaller inputs run the serial builds (common/threads.py)

_philox = philox_njit()
CHUNK = 4096
_BITS4 = ((np.arange(16)[:, None] >> np.arange(4)) & 1).astype(bool)
_BITS8 = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)


@functools.lru_cache(maxsize=64)
def _table(bits: int, dtype, scale: float):
    """table[t, l] = scale if bit l of t is set, else 0, for t < 2**bits (built once per
    dtype and scale; the kernels only read it)."""
    pattern = _BITS4 if bits == 4 else _BITS8
    return np.where(pattern, dtype.type(scale), dtype.type(0)).astype(dtype)


@parallel_njit(fastmath=False, cache=True)
def _forward(x, y, mask, k0, k1, c2, c3, threshold, table, offset):
    n = x.size
    for ch in prange((n + CHUNK - 1) // CHUNK):
        s = ch * CHUNK
        L = min(n - s, CHUNK)
        nb = (L + 3) // 4
        g = offset + np.uint64(s)
        h = int(g & np.uint64(3))
        ng = (h + L + 3) // 4  # blocks g div 4 … (g + L − 1) div 4: nb or nb + 1
        nib = np.empty(nb + 2, np.uint8)
        b0 = g >> np.uint64(2)
        for k in range(ng):
            b = b0 + np.uint64(k)
            w0, w1, w2, w3 = _philox(b & MASK32, b >> SHIFT32, c2, c3, k0, k1)
            nib[k] = np.uint8((w0 >= threshold) | ((w1 >= threshold) << 1)
                              | ((w2 >= threshold) << 2) | ((w3 >= threshold) << 3))
        nib[ng] = 0
        if h:
            for k in range(nb):
                nib[k] = np.uint8(((nib[k] | (nib[k + 1] << 4)) >> h) & 15)
        nib[nb] = 0
        full = L // 4
        xs = x[s:s + 4 * full].reshape(full, 4)
        ys = y[s:s + 4 * full].reshape(full, 4)
        for k in range(full):
            t = nib[k]
            for l in range(4):
                ys[k, l] = xs[k, l] * table[t, l]
        for l in range(L - 4 * full):
            i = s + 4 * full + l
            y[i] = x[i] * table[nib[full], l]
        ms = mask[s // 8:s // 8 + (nb + 1) // 2]
        for j in range((nb + 1) // 2):
            ms[j] = nib[2 * j] | (nib[2 * j + 1] << 4)
        if L % 8:  # the bits past the last element are zero
            ms[(nb + 1) // 2 - 1] &= np.uint8((1 << (L % 8)) - 1)


@parallel_njit(fastmath=False, cache=True)
def _backward(dy, mask, dx, table):
    n = dy.size
    full = n // 8
    g = dy[:8 * full].reshape(full, 8)
    d = dx[:8 * full].reshape(full, 8)
    for j in prange(full):
        t = mask[j]
        for l in range(8):
            d[j, l] = g[j, l] * table[t, l]
    for l in range(n - 8 * full):
        dx[8 * full + l] = dy[8 * full + l] * table[mask[full], l]


@serial_below(SERIAL_BELOW)
def forward(x, y, mask, seed, layer_id, step, threshold, scale, offset=0):
    """y = x · m · scale and mask = m packed; see reference.forward."""
    k0, k1 = dropout_key(seed, layer_id)
    c2, c3 = dropout_counter_hi(step)
    u = np.uint64
    table = _table(4, x.dtype, float(scale))
    _forward(x.reshape(-1), y.reshape(-1), mask.reshape(-1), u(k0), u(k1), u(c2), u(c3), u(threshold), table,
             u(offset))


@serial_below(SERIAL_BELOW)
def backward(dy, mask, dx, scale):
    """dx = dy · m · scale with m unpacked from ``mask``; see reference.backward."""
    table = _table(8, dy.dtype, float(scale))
    _backward(dy.reshape(-1), mask.reshape(-1), dx.reshape(-1), table)
