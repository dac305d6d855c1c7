"""Layer normalization, CUDA C tier: layernorm.cu through cupy.RawModule, compiled once per process.

Host side of the kernels in layernorm.cu: the block shape of the row kernels (32 threads per row
and 8 rows per block for rows up to ``SHORT_ROW`` values, 256 threads per row beyond), the
chunking of the column reduction of dγ and dβ (about ``BLOCKS_PER_SM`` blocks per SM), its
float64 partials from CuPy's pool; launches are asynchronous (no host synchronization). Device
plumbing and the ``device`` test seam: kernels/common/cupy.py.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..common.cupy import compiled, sourced, suffix

THREADS = 256          # every kernel's block
SHORT_ROW = 1024       # rows up to this many values: 32 threads each, 8 rows per block
BLOCKS_PER_SM = 8
MIN_CHUNK_ROWS = 32    # rows per block of the column reduction, at least
MAX_GRID = 65535

source = sourced(Path(__file__).with_name("layernorm.cu"))
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def _rows_launch(dev, M: int, D: int):
    """(grid, block) of a row kernel."""
    tx = 32 if D <= SHORT_ROW else THREADS
    ty = THREADS // tx
    blocks = math.ceil(M / ty)
    return (max(1, min(blocks, 32 * dev.sm_count, MAX_GRID)),), (tx, ty)


def forward(x, weight, bias, y, save_mean, save_invstd, eps):
    """y, μ, invstd of x's rows; see reference.forward."""
    dev = _device()
    M, D = x.shape
    grid, block = _rows_launch(dev, M, D)
    dev.kernel("ln_forward_" + suffix(x.dtype))(
        grid, block, (x, weight, bias, y, save_mean, save_invstd, np.int64(M), np.int64(D), np.float64(eps)))


def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias):
    """dx, dγ, dβ; see reference.backward."""
    dev = _device()
    M, D = x.shape
    suf = suffix(x.dtype)
    i64 = np.int64
    grid, block = _rows_launch(dev, M, D)
    dev.kernel("ln_dx_" + suf)(grid, block, (dy, x, weight, save_mean, save_invstd, dx, i64(M), i64(D)))
    tiles = math.ceil(D / THREADS)
    want = math.ceil(BLOCKS_PER_SM * dev.sm_count / tiles)
    chunks = max(1, min(want, math.ceil(M / MIN_CHUNK_ROWS), MAX_GRID))
    rows = math.ceil(M / chunks)
    chunks = math.ceil(M / rows)
    pdw = dev.xp.empty((chunks, D), dtype=np.float64)
    pdb = dev.xp.empty((chunks, D), dtype=np.float64)
    dev.kernel("ln_dwdb_partial_" + suf)((tiles, chunks), (THREADS,),
                                         (dy, x, save_mean, save_invstd, i64(M), i64(D), i64(rows), pdw, pdb))
    dev.kernel("ln_dwdb_finalize_" + suf)((max(1, min(tiles, MAX_GRID)),), (THREADS,),
                                          (pdw, pdb, np.int32(chunks), i64(D), dweight, dbias))
