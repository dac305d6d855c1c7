"""Softmax cross-entropy on the CPU: one compiled pass over the rows (the row: row.py; formulas:
reference.py), each row's max, exponentials, log-sum and gradient in float64, rounded on store;
the rows' terms are summed in row order, so the loss does not depend on the thread count. Rows
run in parallel from ``PARALLEL_MIN`` logits on.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..common.jit import njit
from ..common.threads import parallel_njit, serial_below
from .row import row_loss

PARALLEL_MIN = 1 << 14
_row = njit(inline="always", cache=True)(row_loss)


@parallel_njit(cache=True)
def _forward(z, y, keep, spread, norm, loss, grad):
    n = z.shape[0]
    terms = np.empty(n)
    for i in prange(n):
        terms[i] = _row(z, y, i, keep, spread, norm, grad)
    total = 0.0
    for i in range(n):
        total += terms[i]
    loss[0] = total / norm


@serial_below(PARALLEL_MIN)
def forward(z, y, eps, norm, loss, grad):
    _forward(z, y, 1.0 - eps, eps / z.shape[1] if z.shape[1] else 0.0, float(norm), loss, grad)
