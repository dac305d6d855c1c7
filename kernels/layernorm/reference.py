"""Layer normalization, the specification (NumPy or CuPy arrays, computed in float64).

Inputs are viewed as (M, D) rows: D is the product of the normalized (last) dimensions and M of
the others; statistics are per row r over its D values, the affine γ, β per column j.

    forward    μ_r = (1/D) Σ_j x_rj,  σ²_r = (1/D) Σ_j (x_rj − μ_r)²   (biased; two passes)
               invstd_r = 1/√(σ²_r + ε),  x̂ = (x − μ)·invstd,  y = γ·x̂ + β
    backward   g = dy·γ,
               dx = (invstd/D)·(D·g − Σ_j g − x̂·Σ_j g·x̂)   (sums over the row)
               dγ = Σ_r dy·x̂,  dβ = Σ_r dy                  (sums over the rows)

The same in training and evaluation (no running statistics). ``save_mean`` and ``save_invstd``
(μ and invstd, float64 of shape (M,) in every tier) carry the statistics to the backward pass.
Every kernel writes into the arrays it is given.
"""
from __future__ import annotations

from ..common.xp import array_module as _xp


def forward(x, weight, bias, y, save_mean, save_invstd, eps):
    xp = _xp(x)
    x64 = x.astype(xp.float64)
    mean = x64.mean(axis=1)
    var = ((x64 - mean[:, None]) ** 2).mean(axis=1)
    invstd = 1.0 / xp.sqrt(var + eps)
    xhat = (x64 - mean[:, None]) * invstd[:, None]
    y[...] = (weight.astype(xp.float64) * xhat + bias.astype(xp.float64)).astype(y.dtype)
    save_mean[...] = mean
    save_invstd[...] = invstd


def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias):
    xp = _xp(x)
    D = x.shape[1]
    dy64 = dy.astype(xp.float64)
    invstd = save_invstd.astype(xp.float64)[:, None]
    xhat = (x.astype(xp.float64) - save_mean.astype(xp.float64)[:, None]) * invstd
    g = dy64 * weight.astype(xp.float64)
    sg = g.sum(axis=1, keepdims=True)
    sgx = (g * xhat).sum(axis=1, keepdims=True)
    dx[...] = ((invstd / D) * (D * g - sg - xhat * sgx)).astype(dx.dtype)
    dweight[...] = (dy64 * xhat).sum(axis=0).astype(dweight.dtype)
    dbias[...] = dy64.sum(axis=0).astype(dbias.dtype)
