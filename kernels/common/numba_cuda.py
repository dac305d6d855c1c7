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

__all__ = ["cuda", "device_view"]


def device_view(a):
    """Device view of a CuPy array without Numba's stream synchronisation; NumPy arrays (the
    simulator) pass through."""
    if isinstance(a, np.ndarray):
        return a
    return cuda.as_cuda_array(a, sync=False)
