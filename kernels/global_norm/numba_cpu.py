"""Global L2 norm and non-finite flag on the CPU: one parallel pass over fixed-size chunks.

Each chunk of ``CHUNK`` elements is summed in float64 with eight independent accumulators (so
the adds pipeline without fastmath), the chunk sums are added in chunk order: the result does not
depend on the thread count. The non-finite flag costs nothing on the common path: a chunk whose
sum is finite holds only finite values; only a chunk with a non-finite sum is scanned again
(it may hold NaN/Inf, or float64 values whose squares overflow). See reference.py for ``stats``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..common.threads import parallel_njit, serial_below

SERIAL_BELOW = 1 << 19  # elements: smaller inputs run the serial builds (common/threads.py)

CHUNK = 1 << 15


@parallel_njit(fastmath=False, cache=True)
def _sumsq_flag(x):
    n = x.size
    nch = (n + CHUNK - 1) // CHUNK
    part = np.empty(nch, np.float64)
    badc = np.zeros(nch, np.int8)
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        i = lo
        while i + 8 <= hi:
            x0 = np.float64(x[i])
            x1 = np.float64(x[i + 1])
            x2 = np.float64(x[i + 2])
            x3 = np.float64(x[i + 3])
            x4 = np.float64(x[i + 4])
            x5 = np.float64(x[i + 5])
            x6 = np.float64(x[i + 6])
            x7 = np.float64(x[i + 7])
            a0 += x0 * x0
            a1 += x1 * x1
            a2 += x2 * x2
            a3 += x3 * x3
            a4 += x4 * x4
            a5 += x5 * x5
            a6 += x6 * x6
            a7 += x7 * x7
            i += 8
        while i < hi:
            xi = np.float64(x[i])
            a0 += xi * xi
            i += 1
        s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
        part[c] = s
        if not math.isfinite(s):
            for j in range(lo, hi):
                if not math.isfinite(x[j]):
                    badc[c] = 1
                    break
    total = 0.0
    bad = 0
    for c in range(nch):
        total += part[c]
        bad |= badc[c]
    return total, bad


@parallel_njit(fastmath=False, cache=True)
def _scale(x, s):
    for i in prange(x.size):
        x[i] = x[i] * s


@serial_below(SERIAL_BELOW)
def grad_stats(x, stats, count=False):
    total, bad = _sumsq_flag(x)
    stats[0] = total
    stats[1] = 1.0 if bad else 0.0
    if count:
        if bad:
            stats[3] += 1.0
        else:
            stats[2] += 1.0


@serial_below(SERIAL_BELOW)
def scale_by_norm(x, stats, max_norm):
    norm = math.sqrt(float(stats[0]))
    max_norm = float(max_norm)
    if norm > max_norm:
        _scale(x, max_norm / norm)
