"""Dropout, CUDA C tier: dropout.cu through cupy.RawModule, compiled once per process.

kernels/common/philox.cuh and vec.cuh are pasted in place of their #include lines, so CuPy's
compile cache keys on the full source. Launches are asynchronous (no host synchronization).
Device plumbing and the ``device`` test seam: kernels/common/cupy.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import aligned, compiled, grid, sourced, suffix
from ..common.philox import dropout_counter_hi, dropout_key

THREADS = 256


source = sourced(Path(__file__).with_name("dropout.cu"))  # the .cu file, shared headers pasted in
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def _grid(dev, work: int) -> int:
    return grid(dev, work, THREADS, per_sm=32)


def forward(x, y, mask, seed, layer_id, step, threshold, scale, offset=0):
    """y = x · m · scale and mask = m packed; see reference.forward."""
    dev = _device()
    k0, k1 = dropout_key(seed, layer_id)
    c2, c3 = dropout_counter_hi(step)
    n, nbytes = x.size, mask.size
    if nbytes == 0:
        return
    u32, i64 = np.uint32, np.int64
    dev.kernel("dropout_fwd_" + suffix(x.dtype))(
        (_grid(dev, nbytes),), (THREADS,),
        (x, y, mask, i64(n), i64(nbytes), u32(k0), u32(k1), u32(c2), u32(c3), i64(offset), u32(threshold),
         x.dtype.type(scale), aligned(dev, x, y)))


def backward(dy, mask, dx, scale):
    """dx = dy · m · scale; see reference.backward."""
    dev = _device()
    n, nbytes = dy.size, mask.size
    if nbytes == 0:
        return
    dev.kernel("dropout_bwd_" + suffix(dy.dtype))(
        (_grid(dev, nbytes),), (THREADS,),
        (dy, mask, dx, np.int64(n), np.int64(nbytes), dy.dtype.type(scale), aligned(dev, dy, dx)))


def philox(rows, out):
    """Philox4x32-10 of the (m, 6) uint32 rows (c0, c1, c2, c3, k0, k1) into ``out`` (m, 4) uint32."""
    dev = _device()
    dev.kernel("philox4x32_10_kernel")((_grid(dev, rows.shape[0]),), (THREADS,), (rows, out, np.int32(rows.shape[0])))
