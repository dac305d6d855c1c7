"""CUDA C tier of the weight EMA (ema.cu through cupy.RawModule); no host sync."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import THREADS, aligned, compiled, grid, read_source, suffix

device = None  # None: the current GPU; tests may put a CPU emulator here


def source() -> str:
    return read_source(Path(__file__).with_name("ema.cu"))


def _dev():
    return device if device is not None else compiled(source)


def ema_update(ema, w, decay):
    dev = _dev()
    n = ema.size
    vec = aligned(dev, ema, w)
    dev.kernel("ema_update_" + suffix(ema.dtype))(
        (grid(dev, n // 4 if vec else n),), (THREADS,), (ema, w, np.int64(n), vec, np.float64(1.0 - decay)))
