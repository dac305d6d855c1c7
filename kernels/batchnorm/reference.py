"""Batch normalization, the specification (NumPy or CuPy arrays, computed in float64).

Inputs are viewed as (N, C, S): S = 1 for (N, C) and S = H·W for (N, C, H, W); statistics are
per channel c over the n = N·S values x[:, c, :].

    training forward  μ = (1/n) Σ x,  σ² = (1/n) Σ (x − μ)²   (biased; two passes, no E[x²] − μ²)
                      invstd = 1/√(σ² + ε),  x̂ = (x − μ)·invstd,  y = γ·x̂ + β
                      running_mean ← (1 − m)·running_mean + m·μ
                      running_var  ← (1 − m)·running_var + m·σ²·n/(n − 1)   (unbiased, as PyTorch)
    evaluation        y = γ·(x − running_mean)/√(running_var + ε) + β
    backward          dβ = Σ dy,  dγ = Σ dy·x̂,
                      dx = (γ·invstd/n)·(n·dy − dβ − x̂·dγ)   with batch statistics,
                      dx = γ·invstd·dy                        with fixed (running) statistics
    fused ReLU        forward: y = max(y, 0) after rounding to y's dtype (``relu``); backward:
                      dy is first dy·[relu_y > 0] in dy's dtype, relu_y the forward's output

``save_mean`` and ``save_invstd`` (μ and invstd, float64 in every tier) carry the statistics
from the forward to the backward pass. Every kernel writes into the arrays it is given.
"""
from __future__ import annotations

from ..common.xp import array_module as _xp




def _col(v):
    return v.reshape(1, -1, 1)


def _relu(y, relu):
    if relu:
        _xp(y).maximum(y, 0, out=y)


def forward_train(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd,
                  eps, momentum, update_running, relu=False):
    xp = _xp(x)
    x64 = x.astype(xp.float64)
    n = x.shape[0] * x.shape[2]
    mean = x64.mean(axis=(0, 2))
    var = ((x64 - _col(mean)) ** 2).mean(axis=(0, 2))
    invstd = 1.0 / xp.sqrt(var + eps)
    xhat = (x64 - _col(mean)) * _col(invstd)
    y[...] = (_col(weight.astype(xp.float64)) * xhat + _col(bias.astype(xp.float64))).astype(y.dtype)
    _relu(y, relu)
    save_mean[...] = mean
    save_invstd[...] = invstd
    if update_running:
        rm = running_mean.astype(xp.float64)
        rv = running_var.astype(xp.float64)
        running_mean[...] = ((1.0 - momentum) * rm + momentum * mean).astype(running_mean.dtype)
        running_var[...] = ((1.0 - momentum) * rv + momentum * var * (n / (n - 1))).astype(running_var.dtype)


def forward_eval(x, weight, bias, running_mean, running_var, y, eps, relu=False):
    xp = _xp(x)
    invstd = 1.0 / xp.sqrt(running_var.astype(xp.float64) + eps)
    xhat = (x.astype(xp.float64) - _col(running_mean.astype(xp.float64))) * _col(invstd)
    y[...] = (_col(weight.astype(xp.float64)) * xhat + _col(bias.astype(xp.float64))).astype(y.dtype)
    _relu(y, relu)


def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, batch_stats, relu_y=None):
    xp = _xp(x)
    if relu_y is not None:
        dy = dy * (relu_y > 0)
    n = x.shape[0] * x.shape[2]
    dy64 = dy.astype(xp.float64)
    invstd = save_invstd.astype(xp.float64)
    xhat = (x.astype(xp.float64) - _col(save_mean.astype(xp.float64))) * _col(invstd)
    dbeta = dy64.sum(axis=(0, 2))
    dgamma = (dy64 * xhat).sum(axis=(0, 2))
    g = _col(weight.astype(xp.float64) * invstd)
    if batch_stats:
        out = (g / n) * (n * dy64 - _col(dbeta) - xhat * _col(dgamma))
    else:
        out = g * dy64
    dx[...] = out.astype(dx.dtype)
    dweight[...] = dgamma.astype(dweight.dtype)
    dbias[...] = dbeta.astype(dbias.dtype)
