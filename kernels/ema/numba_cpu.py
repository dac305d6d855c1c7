"""EMA of the weights on the CPU: one parallel pass, 1 − d computed on the host in float64 and
rounded once to the arena's dtype. Formula: reference.py."""
from __future__ import annotations

from numba import prange

from ..common.threads import parallel_njit, serial_below

SERIAL_BELOW = 1 << 19  # parameters: smaller arenas run the serial builds (common/threads.py)


@parallel_njit(fastmath=False, cache=True)
def _ema(ema, w, omd):
    for i in prange(ema.size):
        e = ema[i]
        ema[i] = e + omd * (w[i] - e)


@serial_below(SERIAL_BELOW)
def ema_update(ema, w, decay):
    _ema(ema, w, ema.dtype.type(1.0 - decay))
