"""Synchronized batch normalization (``BatchNorm1d(C, sync=comm)``): statistics over the global batch.

Rank r holds n_r of the N = Σ_r n_r values of each channel (its shard's N·S). The forward reduces
per-channel sums over the ranks in one all-reduce, of the values shifted by k = the running mean
(the same on every rank, and near μ, so the difference below loses no digits; 0 without running
statistics):

    μ = k + (1/N) Σ_r Σ (x − k),   σ² = (1/N) Σ_r Σ (x − k)² − (μ − k)²,
    x̂ = (x − μ)/√(σ² + ε),   y = γ·x̂ + β

and the running statistics move with the global μ and σ²·N/(N − 1), identically on every rank.
The backward takes each rank's dy as the gradient of its shard's mean loss (the Trainer's and
``allreduce_gradients``' convention, w_r = n_r/N its share), reduces S₁ = Σ_r w_r Σ dy and
S₂ = Σ_r w_r Σ dy·x̂ and returns

    dx = γ·invstd·(dy − (S₁ + x̂·S₂)/n_r),   dγ = Σ dy·x̂,  dβ = Σ dy   (the rank's own sums)

which is the 1-process layer's dx for the global batch (rescaled to the shard's loss), while dγ
and dβ are all-reduced with the other gradients. Computed with array operations in float64.
"""
from __future__ import annotations

import numpy as np

from .. import backend


def _col(v):
    return v.reshape(1, -1, 1)


def forward(layer, x, weight, bias, factor: float, update: bool, relu: bool):
    """y for a training forward on this rank's shard; saves what ``backward`` needs."""
    comm = layer.sync
    xp = backend.get_array_module(x)
    C = layer.num_features
    x64 = xp.ascontiguousarray(x).reshape(x.shape[0], C, -1).astype(np.float64)
    n = x64.shape[0] * x64.shape[2]
    k = getattr(layer, "running_mean", None)
    shift = xp.zeros(C) if k is None else k.astype(np.float64)
    d = x64 - _col(shift)
    sums = comm.allreduce(xp.concatenate([d.sum(axis=(0, 2)), (d * d).sum(axis=(0, 2)), xp.asarray([float(n)])]))
    total = float(sums[-1])
    dmean = sums[:C] / total
    mean = shift + dmean
    var = xp.maximum(sums[C:2 * C] / total - dmean * dmean, 0.0)
    invstd = 1.0 / xp.sqrt(var + layer.eps)
    xhat = (d - _col(dmean)) * _col(invstd)
    y = (_col(weight.astype(np.float64)) * xhat + _col(bias.astype(np.float64))).astype(x.dtype).reshape(x.shape)
    if relu:
        xp.maximum(y, 0, out=y)
    if update:
        rm, rv = layer.running_mean, layer.running_var
        unbiased = var * (total / (total - 1.0))
        rm[...] = ((1.0 - factor) * rm.astype(np.float64) + factor * mean).astype(rm.dtype)
        rv[...] = ((1.0 - factor) * rv.astype(np.float64) + factor * unbiased).astype(rv.dtype)
    layer._saved = (x, mean, invstd, "sync", n / total)
    return y


def backward(layer, dy, weight, dw, db):
    """dx for this rank's shard; dγ, dβ (this rank's sums) into ``dw``, ``db``."""
    x, mean, invstd, _, share = layer._saved
    xp = backend.get_array_module(dy)
    C = layer.num_features
    if layer._relu_y is not None:
        dy = dy * (layer._relu_y > 0)
    dy64 = xp.ascontiguousarray(dy).reshape(dy.shape[0], C, -1).astype(np.float64)
    xhat = (x.reshape(x.shape[0], C, -1).astype(np.float64) - _col(mean)) * _col(invstd)
    n = dy64.shape[0] * dy64.shape[2]
    dbeta = dy64.sum(axis=(0, 2))
    dgamma = (dy64 * xhat).sum(axis=(0, 2))
    s = layer.sync.allreduce(share * xp.concatenate([dbeta, dgamma]))
    dx = _col(weight.astype(np.float64) * invstd) * (dy64 - (_col(s[:C]) + xhat * _col(s[C:])) / n)
    if dw is not None:
        dw[...] = dgamma.astype(dw.dtype)
        db[...] = dbeta.astype(db.dtype)
    return dx.astype(dy.dtype).reshape(dy.shape)
