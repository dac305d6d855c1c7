"""CUDA C tier of the weight EMA (ema.cu through cupy.RawModule); no host sync."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..global_norm.cupy_tier import THREADS, aligned, gpu_device, grid, suffix

device = None  # None: the current GPU; tests may put a CPU emulator here
_per_gpu = {}


def source() -> str:
    return Path(__file__).with_name("ema.cu").read_text()


def _dev():
    return device if device is not None else gpu_device(_per_gpu, source)


def ema_update(ema, w, decay):
    dev = _dev()
    n = ema.size
    vec = aligned(dev, ema, w)
    dev.kernel("ema_update_" + suffix(ema.dtype))(
        (grid(dev, n // 4 if vec else n),), (THREADS,), (ema, w, np.int64(n), vec, np.float64(1.0 - decay)))
