"""One row of the softmax cross-entropy (the formulas of reference.py), written once for the two
Numba tiers: numba_cpu compiles it with njit, numba_cuda as a CUDA device function."""
from __future__ import annotations

import math

import numpy as np


def row_loss(z, y, i, keep, spread, norm, grad):
    """Write row i of the gradient and return the row's term of the loss: keep·ℓ_{i,y_i} +
    spread·Σ_c ℓ_{i,c} (keep = 1 − ε, spread = ε/C), in float64; NaN for a label outside [0, C),
    found before any read of the row (so also for C = 0)."""
    c = z.shape[1]
    t = y[i]
    if t < 0 or t >= c:
        for j in range(c):
            grad[i, j] = math.nan
        return math.nan
    m = np.float64(z[i, 0])
    for j in range(1, c):
        v = np.float64(z[i, j])
        if v > m:
            m = v
    s = 0.0
    shifted = 0.0  # Σ_c (z − m), for the smoothing term
    for j in range(c):
        d = np.float64(z[i, j]) - m
        e = math.exp(d)
        grad[i, j] = e
        s += e
        shifted += d
    log_s = math.log(s)
    term = keep * (log_s - (np.float64(z[i, t]) - m))
    if spread != 0.0:  # (a −inf logit makes Σ_c (z − m) infinite: only a smoothed loss sees it)
        term += spread * (c * log_s - shifted)
    for j in range(c):
        g = grad[i, j] / s - spread
        if j == t:
            g -= keep
        grad[i, j] = g / norm
    return term
