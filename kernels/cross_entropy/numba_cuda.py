"""Softmax cross-entropy with numba.cuda: the two kernels of cross_entropy.cu (one thread per
row, the row of row.py; then one block summing the rows' terms in a fixed order), in float64,
rounded on store. Under NUMBA_ENABLE_CUDASIM=1 the kernels take NumPy arrays; on a GPU, CuPy
arrays."""
from __future__ import annotations

import numpy as np

from ..common.numba_cuda import block_sum, cuda, device_view
from ..common.xp import array_module
from .row import row_loss

THREADS = 128
TOTAL_THREADS = 256  # a power of two
_row = cuda.jit(device=True)(row_loss)


@cuda.jit
def _rows(z, y, keep, spread, norm, grad, terms):
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        terms[i] = _row(z, y, i, keep, spread, norm, grad)


@cuda.jit
def _total(terms, norm, loss):
    part = cuda.shared.array(TOTAL_THREADS, np.float64)
    k = cuda.threadIdx.x
    acc = 0.0
    for i in range(k, terms.size, TOTAL_THREADS):
        acc += terms[i]
    total = block_sum(part, k, acc, TOTAL_THREADS)
    if k == 0:
        loss[0] = total / norm


def forward(z, y, eps, norm, loss, grad):
    n, c = z.shape
    terms = array_module(z).empty(n, dtype=np.float64)
    z, y, loss, grad, terms_v = (device_view(a) for a in (z, y, loss, grad, terms))
    if n:
        blocks = max(1, min((n + THREADS - 1) // THREADS, 65535))
        _rows[blocks, THREADS](z, y, 1.0 - eps, eps / c if c else 0.0, float(norm), grad, terms_v)
    _total[1, TOTAL_THREADS](terms_v, float(norm), loss)
