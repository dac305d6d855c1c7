"""Global L2 norm and non-finite flag of a flat array: the specification (NumPy or CuPy, any float dtype).

``stats`` is a float64 array of 4 slots::

    stats[0] = Σ x²                       accumulated in float64
    stats[1] = 1.0 if any x is NaN or ±Inf, else 0.0
    stats[2] = applied optimizer steps    advanced only with count=True
    stats[3] = skipped optimizer steps    advanced only with count=True

``grad_stats(x, stats, count)`` writes stats[0] and stats[1]; with ``count`` it also adds 1 to
stats[2] when every x is finite and 1 to stats[3] otherwise — an optimizer's step bookkeeping,
done in the same launch so that a training step needs no extra kernel and no host sync.
Float32 inputs never overflow the float64 sum (3.4e38² ≈ 1.2e77); float64 inputs beyond about
1e154 do, and then the norm is +Inf while the flag stays 0.

``scale_by_norm(x, stats, max_norm)``: x ← x·θ/‖x‖ when ‖x‖ = √stats[0] > θ = max_norm, else x
is left as it is (a NaN norm compares false and leaves x alone).
"""
from __future__ import annotations

import numpy as np

from ..common.xp import array_module as get_array_module


def grad_stats(x, stats, count=False):
    xp = get_array_module(x)
    x64 = x.astype(xp.float64)
    with np.errstate(all="ignore"):  # Inf² and NaN are expected inputs
        sumsq = xp.sum(x64 * x64)
    bad = xp.logical_not(xp.all(xp.isfinite(x)))
    stats[0] = sumsq
    stats[1] = bad
    if count:
        stats[2] += xp.logical_not(bad)
        stats[3] += bad


def scale_by_norm(x, stats, max_norm):
    xp = get_array_module(x)
    norm = xp.sqrt(stats[0])
    scale = xp.where(norm > max_norm, max_norm / norm, 1.0)
    x[...] = (x * scale).astype(x.dtype)
