"""Matrix products for the layers (``Linear``), with OpenBLAS's threads woken only for products
large enough to pay for them.

NumPy's ``matmul`` runs a product of more than 2^18 multiply-adds (m·n·k) on OpenBLAS's own
threads, which then keep spinning for a while and take the cores from the Numba kernels that
follow in the training step. For ``dropout_cnn``, whose one Linear layer makes three products of
about 10^6, a step took 24 ms that way and 14 ms with those products on one thread (2-core
machine, Numba's OpenMP pool): the spinning cost far more than the second thread saved. Products
from 2^18 up to ``THREADED_FROM`` multiply-adds therefore run on the calling thread alone
(``openblas_set_num_threads_local(1)`` around the call, restored after: kernels/common/blas.py);
larger ones — an MLP's 128×784 by 784×512 — keep OpenBLAS's threads, which there ran the step
faster (4.2 against 5.5 ms for the 784-512-256-10 MLP at batch 128 with every product
single-threaded per block on Numba's pool). GPU arrays use ``xp.matmul``.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..kernels.common import blas

THREADED_FROM = 1 << 24  # m·n·k from which OpenBLAS's own threads run the product


def matmul(a, b, out=None):
    """a @ b for 2-D arrays, into ``out`` when given."""
    xp = backend.get_array_module(a)
    if xp is not np or blas.BLAS is None:
        return xp.matmul(a, b, out=out)
    size = a.shape[0] * a.shape[1] * b.shape[-1]
    if size < (1 << 18) or size >= THREADED_FROM:  # below 2^18 OpenBLAS uses one thread by itself
        return np.matmul(a, b, out=out)
    with blas.single_threaded_products(blas.BLAS):
        return np.matmul(a, b, out=out)
