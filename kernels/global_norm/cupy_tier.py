"""CUDA C tier of the global norm (global_norm.cu through cupy.RawModule; device plumbing in
kernels/common/cupy.py). Arrays must be contiguous; 16-byte loads are used only when every flat
buffer is 16-byte aligned. No call here synchronizes with the host. The grad_stats workspace
(partials and the last-block ticket) is per device: launches of it must not run concurrently on
two streams.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import aligned, compiled, grid, sourced, suffix

THREADS = 256       # threads per block of the element-wise kernel
NORM_THREADS = 256  # must match global_norm.cu
MAX_BLOCKS = 2048   # must match global_norm.cu

source = sourced(Path(__file__).with_name("global_norm.cu"))  # the .cu file, shared headers pasted in
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def _workspace(dev):
    """Partial sums, partial flags and the ticket counter (zero at rest: the last block of every
    launch resets it), allocated once per device."""
    ws = getattr(dev, "_gpunet_norm_workspace", None)
    if ws is None:
        xp = dev.xp
        ws = (xp.zeros(MAX_BLOCKS, np.float64), xp.zeros(MAX_BLOCKS, np.uint32), xp.zeros(1, np.uint32))
        dev._gpunet_norm_workspace = ws
    return ws


def grad_stats(x, stats, count=False):
    dev = _device()
    n = x.size
    vec = aligned(dev, x)
    blocks = grid(dev, n // 4 if vec else n, NORM_THREADS, cap=MAX_BLOCKS)
    part_sum, part_bad, ticket = _workspace(dev)
    dev.kernel("grad_stats_" + suffix(x.dtype))(
        (blocks,), (NORM_THREADS,),
        (x, np.int64(n), vec, stats, np.int32(1 if count else 0), part_sum, part_bad, ticket))


def scale_by_norm(x, stats, max_norm):
    dev = _device()
    n = x.size
    vec = aligned(dev, x)
    dev.kernel("scale_by_norm_" + suffix(x.dtype))(
        (grid(dev, n // 4 if vec else n),), (THREADS,), (x, np.int64(n), vec, stats, np.float64(max_norm)))
