"""Softmax cross-entropy from logits with class labels, NumPy reference: the specification of
every tier.

For logits z (N, C), labels y (N,), label smoothing ε and a divisor W (N for the mean, 1 for the
sum), with m_n = max_c z_{n,c}, s_n = Σ_c e^(z_{n,c} − m_n) and ℓ_{n,c} = log s_n − (z_{n,c} − m_n)
(= −log softmax(z_n)[c], stable for any logits):

    loss  = (1/W) Σ_n [(1 − ε) ℓ_{n,y_n} + (ε/C) Σ_c ℓ_{n,c}]
    grad  = ∂loss/∂z:  grad_{n,c} = (p_{n,c} − ε/C − (1 − ε)[c = y_n]) / W,   p_n = softmax(z_n)

A label outside [0, C) makes its row's term of the loss and its gradient row NaN (never an index
into another row or class); so does a NaN or an infinite logit. Everything is computed in float64
and rounded to z's dtype on store, in every tier (they differ from this by the last bits of exp,
log and the order of the sums).
``loss`` is a one-element array of z's dtype, ``grad`` an (N, C) array like z; both are written.
"""
from __future__ import annotations

import numpy as np

from ..common.xp import array_module as _xp


def forward(z, y, eps, norm, loss, grad):
    xp = _xp(z)
    n, c = z.shape
    z = z.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    e = xp.exp(shifted)
    s = e.sum(axis=1)
    log_s = xp.log(s)
    bad = (y < 0) | (y >= c)
    label = xp.where(bad, 0, y)
    rows = xp.arange(n)
    nll = log_s - shifted[rows, label]
    if eps:
        nll = (1 - eps) * nll + (eps / c) * (c * log_s - shifted.sum(axis=1))  # Σ_c ℓ_{n,c} = C log s − Σ_c (z − m)
    loss[...] = xp.where(bad, xp.nan, nll).sum() / norm
    g = e / s[:, None] - eps / c
    g[rows, label] -= 1 - eps
    grad[...] = xp.where(bad[:, None], xp.nan, g / norm)
