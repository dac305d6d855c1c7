"""Philox4x32-10 counter-based random numbers, written once for NumPy, Numba CPU and numba.cuda.

Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) maps a
128-bit counter (c0, c1, c2, c3) and a 64-bit key (k0, k1) to four 32-bit words by ten rounds of

    (hi0, lo0) = M0 · c0,  (hi1, lo1) = M1 · c2          (32×32 → 64-bit products)
    (c0, c1, c2, c3) = (hi1 ⊕ c1 ⊕ k0, lo1, hi0 ⊕ c3 ⊕ k1, lo0)
    (k0, k1) = (k0 + W0, k1 + W1) mod 2³²                 (between rounds)

with M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85. ``philox4x32_10`` is
plain Python on uint64 values that hold 32-bit words, so the very same function runs on NumPy
uint64 arrays (the reference tiers), compiles with ``numba.njit`` (see ``philox_njit``) and with
``numba.cuda.jit(device=True)``. kernels/common/philox.cuh is the CUDA C twin.

Dropout's stream (identical in every tier; see ``dropout_counter``):

    key     = (seed mod 2³², layer_id mod 2³²)
    counter = (b mod 2³², b div 2³², step mod 2³², step div 2³² mod 2³²),   b = i div 4
    word(i) = philox4x32_10(counter, key)[i mod 4]

for element i (flat, C order) of the tensor at the layer's training step ``step``; element j of a
tensor at offset o uses word(o + j) (0 <= o < 2⁶²: a shard that starts at element o of a larger
tensor). An element is kept iff its word >= threshold, threshold = min(round(p · 2³²), 2³² − 1)
(see ``keep_threshold``): p = 0 keeps every element, and the keep probability is
(2³² − threshold) / 2³² = 1 − p to within 2⁻³³.
"""
from __future__ import annotations

import functools

import numpy as np

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)
W1 = np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1): four 32-bit words.

    Arguments and results are uint64 values (scalars or NumPy arrays) below 2³².
    """
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        n0 = (p1 >> SHIFT32) ^ c1 ^ k0
        n2 = (p0 >> SHIFT32) ^ c3 ^ k1
        c1 = p1 & MASK32
        c3 = p0 & MASK32
        c0 = n0
        c2 = n2
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


@functools.lru_cache(maxsize=64)
def keep_threshold(p: float) -> int:
    """The 32-bit threshold of dropout probability p: keep iff word >= threshold (cached per p)."""
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
    return min(int(round(p * 4294967296.0)), 0xFFFFFFFF)


def dropout_key(seed: int, layer_id: int) -> tuple[int, int]:
    """(k0, k1) = (seed mod 2³², layer_id mod 2³²)."""
    return int(seed) & 0xFFFFFFFF, int(layer_id) & 0xFFFFFFFF


def dropout_counter_hi(step: int) -> tuple[int, int]:
    """(c2, c3) = (step mod 2³², step div 2³² mod 2³²), the counter words fixed by the step."""
    step = int(step)
    if step < 0:
        raise ValueError(f"dropout step must be >= 0, got {step}")
    return step & 0xFFFFFFFF, (step >> 32) & 0xFFFFFFFF


def dropout_words(n: int, seed: int, layer_id: int, step: int, offset: int = 0) -> np.ndarray:
    """word(offset + i) for i = 0 … n−1 as uint32 (NumPy; the reference stream), from blocks
    offset div 4 … (offset + n − 1) div 4."""
    k0, k1 = dropout_key(seed, layer_id)
    c2, c3 = dropout_counter_hi(step)
    offset = int(offset)
    b = np.arange(offset // 4, (offset + n + 3) // 4, dtype=np.uint64)
    u = np.uint64
    words = philox4x32_10(b & MASK32, b >> SHIFT32, np.full_like(b, c2), np.full_like(b, c3), u(k0), u(k1))
    return np.stack(words, axis=1).reshape(-1)[offset % 4:offset % 4 + n].astype(np.uint32)


_njit_cache = None


def philox_njit():
    """``philox4x32_10`` compiled for Numba CPU code (inlined into callers)."""
    global _njit_cache
    if _njit_cache is None:
        from .jit import njit

        _njit_cache = njit(inline="always", cache=True)(philox4x32_10)
    return _njit_cache
