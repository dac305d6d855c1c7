"""EMA of the weights with numba.cuda: a grid-stride loop, 1 − d computed on the host in float64.
Formula: reference.py."""
from __future__ import annotations

import numpy as np

from ..common.numba_cuda import cuda, device_view as _dev


THREADS = 128
MAX_BLOCKS = 1024


@cuda.jit
def _ema(ema, w, omd):
    for i in range(cuda.grid(1), ema.size, cuda.gridsize(1)):
        e = ema[i]
        ema[i] = e + omd * (w[i] - e)


def ema_update(ema, w, decay):
    blocks = max(1, min(MAX_BLOCKS, (ema.size + THREADS - 1) // THREADS))
    _ema[blocks, THREADS](_dev(ema), _dev(w), np.float64(1.0 - decay))
