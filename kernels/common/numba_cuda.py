"""``numba.cuda`` for every numba_cuda tier, imported through one place.

numba-cuda 0.30 registers an overload of ``np.row_stack``, which NumPy 2.4 removed; without the
alias below no kernel compiles on a GPU (seen on an H100). Under NUMBA_ENABLE_CUDASIM=1 the same
import gives the simulator.
"""
from __future__ import annotations

import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import cuda  # noqa: E402

__all__ = ["cuda", "device_view", "block_sum"]


def device_view(a):
    """Device view of a CuPy array without Numba's stream synchronisation; NumPy arrays (the
    simulator) pass through."""
    if isinstance(a, np.ndarray):
        return a
    return cuda.as_cuda_array(a, sync=False)


@cuda.jit(device=True)
def block_sum(sh, tid, v, n):
    """Σ of every thread's ``v`` over a block of ``n`` threads (a power of two; ``sh`` a shared
    array of n float64), added as a tree in a fixed order: sh[t] += sh[t + half] for half = n/2,
    n/4, …, 1. Every thread gets the total, and ``sh`` is free again on return."""
    sh[tid] = v
    cuda.syncthreads()
    half = n // 2
    while half > 0:
        if tid < half:
            sh[tid] += sh[tid + half]
        cuda.syncthreads()
        half //= 2
    total = sh[0]
    cuda.syncthreads()
    return total
