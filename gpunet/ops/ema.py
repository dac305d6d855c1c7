"""Exponential moving average of a flat weight buffer: ema ← d·ema + (1 − d)·w, in place, one
pass, on the buffers' device (no host sync). Kernels: kernels/ema/."""
from __future__ import annotations

import math

from .arrays import check_flat
from .registry import register

OP = register("ema")


def ema_update(ema, params, decay: float, *, tier: str | None = None):
    """ema ← d·ema + (1 − d)·params for 0 ≤ d ≤ 1 (computed as ema + (1 − d)(params − ema)).
    Both arrays flat, of one size, dtype and device. Returns ``ema``."""
    try:
        decay = float(decay)
    except (TypeError, ValueError):
        raise TypeError(f"ema_update: decay must be a number, got {decay!r}") from None
    if not (0.0 <= decay <= 1.0) or math.isnan(decay):
        raise ValueError(f"ema_update: decay must lie in [0, 1], got {decay}")
    check_flat("ema_update", {"ema": ema, "params": params})
    OP.select(ema, params, tier=tier).ema_update(ema, params, decay)
    return ema
