"""CUDA C tier of the weight EMA (ema.cu through cupy.RawModule); no host sync."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..global_norm.cupy_tier import THREADS, aligned, grid, kernel, suffix

_CU = Path(__file__).with_name("ema.cu")


def ema_update(ema, w, decay):
    n = ema.size
    vec = aligned(ema, w)
    kernel(_CU, "ema_update_" + suffix(ema.dtype))(
        (grid(n // 4 if vec else n),), (THREADS,), (ema, w, np.int64(n), np.int32(vec), np.float64(1.0 - decay)))
