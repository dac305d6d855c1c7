"""Float64 sums over one contiguous vector, shared by the numba_cpu tiers of the normalizations.

``SUMS`` compiles them with reassociation, so they vectorize: their order is fixed by the build,
not by the thread count. ``mean_m2`` is the stable two-pass (mean, M2 = Σ(v − mean)²) — no
E[v²] − E[v]² — for a vector that stays in cache between the passes.
"""
from __future__ import annotations

from .jit import njit

SUMS = {"reassoc", "contract"}


@njit(fastmath=SUMS, cache=True)
def mean_m2(v):
    """(mean, M2) of the contiguous vector v, by two float64 passes over it."""
    S = v.size
    s = 0.0
    for q in range(S):
        s += v[q]
    mean = s / S
    s = 0.0
    for q in range(S):
        d = v[q] - mean
        s += d * d
    return mean, s
