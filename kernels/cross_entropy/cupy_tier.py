"""Softmax cross-entropy, CUDA C tier: cross_entropy.cu through cupy.RawModule, two asynchronous
launches on CuPy's current stream (rows, then the fixed-order total); nothing is read back.
Device plumbing and the ``device`` test seam: kernels/common/cupy.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import THREADS, compiled, grid, sourced, suffix

XENT_THREADS = 256  # must match cross_entropy.cu

source = sourced(Path(__file__).with_name("cross_entropy.cu"))
device = None  # None: the current GPU; tests may put a CPU emulator here


def forward(z, y, eps, norm, loss, grad):
    dev = device if device is not None else compiled(source)
    n, c = z.shape
    terms = dev.xp.empty(n, dtype=np.float64)
    t = suffix(z.dtype)
    if n:
        spread = eps / c if c else 0.0
        dev.kernel("xent_rows_" + t)((grid(dev, n),), (THREADS,),
                                     (z, y, np.int64(n), np.int32(c), np.float64(1.0 - eps), np.float64(spread),
                                      np.float64(norm), grad, terms))
    dev.kernel("xent_total_" + t)((1,), (XENT_THREADS,), (terms, np.int64(n), np.float64(norm), loss))
