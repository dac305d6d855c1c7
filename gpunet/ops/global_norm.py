"""Global L2 norm of a flat array on its device, with a non-finite flag, and clipping by it.

``grad_stats(x, stats)`` fills a float64 device array of 4 slots: [Σx², non-finite flag (1.0 if
any x is NaN or ±Inf), applied steps, skipped steps]; with ``count=True`` it also advances the
step counters (see kernels/global_norm/reference.py). ``global_norm(x)`` returns ‖x‖₂ as a 0-d
float64 array on x's device; ``scale_by_norm(x, stats, θ)`` does x ← x·θ/‖x‖ when ‖x‖ > θ, with
the norm read from device memory. None of them synchronizes with the host.

"""
from __future__ import annotations

import numpy as np

from .. import backend
from .arrays import check_flat, check_stats
from .registry import register

OP = register("global_norm")


def new_stats(like):
    """A zeroed stats array (4 float64 slots) on the device of ``like``."""
    return backend.get_array_module(like).zeros(4, dtype=np.float64)


def grad_stats(x, stats=None, count: bool = False, *, tier: str | None = None):
    """Write [Σx², non-finite flag] into stats[0:2] (and advance the step counters with
    ``count``); returns ``stats`` (a new one when None). One launch, no host sync."""
    _, _, dev = check_flat("grad_stats", {"x": x})
    if stats is None:
        stats = new_stats(x)
    check_stats("grad_stats", stats, dev)
    OP.select(x, stats, tier=tier).grad_stats(x, stats, bool(count))
    return stats


def global_norm(x, *, tier: str | None = None):
    """‖x‖₂ = √(Σx²) as a 0-d float64 array on x's device (summed in float64; NaN or Inf in x
    gives a NaN or Inf norm). Reading it with float() is the only host sync."""
    stats = grad_stats(x, tier=tier)
    return backend.get_array_module(x).sqrt(stats[:1]).reshape(())


def scale_by_norm(x, stats, max_norm: float, *, tier: str | None = None):
    """x ← x·θ/‖x‖ when ‖x‖ = √stats[0] > θ = max_norm (in place; the norm is read on the device)."""
    _, _, dev = check_flat("scale_by_norm", {"x": x})
    check_stats("scale_by_norm", stats, dev)
    max_norm = float(max_norm)
    if not (max_norm > 0 and np.isfinite(max_norm)):
        raise ValueError(f"scale_by_norm: max_norm must be a finite number > 0, got {max_norm}")
    OP.select(x, stats, tier=tier).scale_by_norm(x, stats, max_norm)
    return x
