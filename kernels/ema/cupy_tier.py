"""CUDA C tier of the weight EMA (ema.cu through cupy.RawModule); no host sync."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import THREADS, aligned, compiled, grid, sourced, suffix

source = sourced(Path(__file__).with_name("ema.cu"))  # the .cu file, shared headers pasted in
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def ema_update(ema, w, decay):
    dev = _device()
    n = ema.size
    vec = aligned(dev, ema, w)
    dev.kernel("ema_update_" + suffix(ema.dtype))(
        (grid(dev, n // 4 if vec else n),), (THREADS,), (ema, w, np.int64(n), vec, np.float64(1.0 - decay)))
