"""Matrix products for the layers (``Linear``) on the CPU, run on Numba's thread pool so that a
training step uses one pool only.

NumPy's ``matmul`` runs a product of more than 2^18 multiply-adds (m·n·k) on OpenBLAS's own
threads, which keep spinning for a while after it and take the cores from the Numba kernels that
follow; Numba's workers, which spin briefly after each kernel (gpunet/cpu_threads.py), would take
them from OpenBLAS's threads in turn (the 784-512-256-10 MLP's epoch at batch 128 took 1.35 s with
idle Numba workers asleep, 2.1 s with them spinning against OpenBLAS's). So a product of 2^18
multiply-adds or more is cut into ``pieces(m, n)`` blocks of C's rows (or of its columns, when C
is wider than tall), and one Numba parallel loop makes each block's product with a single-threaded
BLAS call (``blas.gemm_blocks``). The blocks are a function of the shapes only, never of the
thread count, so neither are the results (OpenBLAS's own threads cut the work by their number;
a block's product may round differently from the whole product's: these are not NumPy's bits).
Smaller products (which OpenBLAS runs on the calling thread by itself), other dtypes and
operands that are neither C- nor F-contiguous go to ``numpy.matmul`` on the calling thread alone.
GPU arrays use ``xp.matmul``.

    C[i0:i1, :] = op(A)[i0:i1, :] · op(B)    (blocks of rows)
    C[:, j0:j1] = op(A) · op(B)[:, j0:j1]    (blocks of columns)
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..kernels.common import blas

POOLED_FROM = 1 << 18  # m·n·k from which the product runs in blocks on Numba's pool
BLOCK = 64             # rows (or columns) of C per block, at least: OpenBLAS packs op(B) (op(A)) per block
MAX_BLOCKS = 16


def pieces(m: int, n: int) -> int:
    """Blocks of C's longer side: one per ``BLOCK`` of it, from 1 to ``MAX_BLOCKS``."""
    return max(1, min(MAX_BLOCKS, max(m, n) // BLOCK))


def matmul(a, b, out=None):
    """a @ b for 2-D arrays, into ``out`` when given."""
    xp = backend.get_array_module(a)
    if xp is not np or blas.BLAS is None:
        return xp.matmul(a, b, out=out)
    m, k = a.shape
    n = b.shape[-1]
    if m * n * k < POOLED_FROM:  # OpenBLAS runs these on the calling thread by itself
        return np.matmul(a, b, out=out)
    dtype = a.dtype
    fa, fb = blas.operand(a), blas.operand(b)
    if not (dtype in (np.float32, np.float64) and b.dtype == dtype and fa is not None and fb is not None
            and b.shape[0] == k and (out is None or (out.shape == (m, n) and out.dtype == dtype
                                                     and out.flags.c_contiguous))):
        with blas.single_threaded_products(blas.BLAS):
            return np.matmul(a, b, out=out)
    c = np.empty((m, n), dtype) if out is None else out
    gemm = blas.BLAS.sgemm if dtype == np.float32 else blas.BLAS.dgemm
    with blas.single_threaded_products(blas.BLAS):
        blas.gemm_blocks(gemm, blas.BLAS.set_threads_local, fa[0], fb[0], m, n, k, a.ctypes.data, fa[1],
                         b.ctypes.data, fb[1], c.ctypes.data, max(n, 1), pieces(m, n), m >= n, dtype.itemsize)
    return c
