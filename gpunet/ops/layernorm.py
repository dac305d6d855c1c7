"""Layer-normalization op: validates arguments, picks a kernel tier (see registry.py), allocates
outputs. An input x of shape (..., d₁, …, d_k) normalized over its last k dimensions (``ndim``
= k) is viewed as (M, D) rows, D = d₁·…·d_k; statistics are per row, the affine γ, β of shape
(d₁, …, d_k) per column. Formulas: kernels/layernorm/reference.py.

- ``layer_norm``: returns (y, mean, invstd), the last two float64 of shape (M,) for the backward.
- ``layer_norm_backward``: (dx, dγ, dβ); ``dweight``/``dbias`` may be given to receive the
  parameter gradients in place (arena views).

``check=False`` skips the argument checks: for a caller that has made them (the LayerNorm layer,
which checks its input and owns the other arrays; GPUNET_CHECKS=debug runs them anyway).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from .registry import device_kind, register

OP = register("layernorm")


def _rows(x, ndim: int):
    """x viewed as (M, D) rows over its last ``ndim`` dimensions, contiguous (a copy only when x
    is not)."""
    if not x.flags.c_contiguous:
        x = backend.get_array_module(x).ascontiguousarray(x)
    D = int(np.prod(x.shape[x.ndim - ndim:], dtype=np.int64))
    return x.reshape(x.size // D, D)


def _check_x(who: str, x, ndim) -> int:
    """x a non-empty float32/float64 array with at least ``ndim`` ≥ 1 dimensions; returns M."""
    if not hasattr(x, "dtype") or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{who}: x must be a float32 or float64 array, got {getattr(x, 'dtype', type(x).__name__)}")
    if isinstance(ndim, bool) or not isinstance(ndim, numbers.Integral) or not 1 <= ndim <= x.ndim:
        raise ValueError(f"{who}: ndim (the normalized trailing dimensions) must be in 1..{x.ndim} for x of shape "
                         f"{tuple(x.shape)}, got {ndim!r}")
    if x.size == 0:
        raise ValueError(f"{who}: x must not be empty, got shape {tuple(x.shape)}")
    return x.size // int(np.prod(x.shape[x.ndim - ndim:], dtype=np.int64))


def _check_arrays(who: str, x, ndim, arrays: dict):
    """Each of ``arrays`` (name -> (array, shape or None for the normalized shape, dtype)) as
    said, contiguous, on x's device."""
    feat = tuple(x.shape[x.ndim - ndim:])
    for name, (v, shape, dtype) in arrays.items():
        shape = feat if shape is None else shape
        if not hasattr(v, "shape") or tuple(v.shape) != shape or v.dtype != dtype:
            raise ValueError(f"{who}: {name} must be an array of shape {shape} and dtype {np.dtype(dtype)}, got "
                             f"{getattr(v, 'dtype', type(v).__name__)} of shape {tuple(getattr(v, 'shape', ()))}")
        if not v.flags.c_contiguous:
            raise ValueError(f"{who}: {name} must be contiguous")
    device_kind(x, *(v for v, _, _ in arrays.values()))


def layer_norm(x, weight, bias, ndim: int = 1, eps: float = 1e-5, tier: str | None = None, check: bool = True):
    """y = γ·(x − μ)/√(σ² + ε) + β over the last ``ndim`` dimensions. Returns (y, mean, invstd)."""
    if check:
        who = "layer_norm"
        _check_x(who, x, ndim)
        _check_arrays(who, x, ndim, {"weight": (weight, None, x.dtype), "bias": (bias, None, x.dtype)})
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{who}: eps must be a positive number, got {eps!r}")
    x2 = _rows(x, ndim)
    xp = backend.get_array_module(x2)
    M = x2.shape[0]
    y = xp.empty_like(x2)
    mean = xp.empty(M, dtype=np.float64)
    invstd = xp.empty(M, dtype=np.float64)
    OP.select(x2, tier=tier).forward(x2, weight.reshape(-1), bias.reshape(-1), y, mean, invstd, float(eps))
    return y.reshape(x.shape), mean, invstd


def layer_norm_backward(dy, x, weight, mean, invstd, ndim: int = 1, dweight=None, dbias=None,
                        tier: str | None = None, check: bool = True):
    """(dx, dγ, dβ) from the forward's input, mean and invstd (float64, one per row)."""
    if check:
        who = "layer_norm_backward"
        M = _check_x(who, x, ndim)
        given = {k: (v, None, x.dtype) for k, v in (("dweight", dweight), ("dbias", dbias)) if v is not None}
        _check_arrays(who, x, ndim, {"dy": (dy, tuple(x.shape), x.dtype), "weight": (weight, None, x.dtype),
                              "mean": (mean, (M,), np.float64), "invstd": (invstd, (M,), np.float64), **given})
    x2, dy2 = _rows(x, ndim), _rows(dy, ndim)
    xp = backend.get_array_module(x2)
    D = x2.shape[1]
    dweight = xp.empty(weight.shape, dtype=x2.dtype) if dweight is None else dweight
    dbias = xp.empty(weight.shape, dtype=x2.dtype) if dbias is None else dbias
    dx = xp.empty_like(x2)
    OP.select(x2, tier=tier).backward(dy2, x2, weight.reshape(D), mean, invstd, dx, dweight.reshape(D),
                                      dbias.reshape(D))
    return dx.reshape(x.shape), dweight, dbias
