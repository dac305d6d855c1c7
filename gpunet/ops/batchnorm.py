"""Batch-normalization op: validates arguments, picks a kernel tier (see registry.py), allocates
outputs. Inputs (N, C) or (N, C, d1, d2, ...) are viewed as (N, C, S), S = d1·d2·…; statistics
are per channel over N·S values. Formulas: kernels/batchnorm/reference.py.

- ``batch_norm_train``: batch statistics (biased variance), running statistics updated in
  place as running = (1 − momentum)·running + momentum·batch, with the unbiased variance;
  returns (y, mean, invstd), the last two float64 for the backward pass.
- ``batch_norm_eval``: running statistics.
- ``batch_norm_backward``: (dx, dγ, dβ); ``batch_stats=False`` for a forward that used fixed
  (running) statistics, dx = γ·invstd·dy.
- a fused ReLU: ``relu=True`` makes the forwards return max(y, 0) from the same pass, and
  ``relu_y=`` (that output) makes the backward take dy·[relu_y > 0] as its gradient, the ReLU
  layer's formulas and bits (BatchNorm → ReLU in a Sequential runs this way).

``check=False`` skips the argument checks: for a caller that has made them (the BatchNorm layers,
which check their input and own the other arrays; GPUNET_CHECKS=debug runs them anyway).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from .registry import device_kind, register

OP = register("batchnorm")


def _ncs(x):
    """x viewed as (N, C, S), contiguous (a copy only when x is not)."""
    if not x.flags.c_contiguous:
        x = backend.get_array_module(x).ascontiguousarray(x)
    shape = x.shape
    if len(shape) == 3:
        return x
    if len(shape) == 2:
        return x.reshape(shape[0], shape[1], 1)
    return x.reshape(shape[0], shape[1], x.size // max(shape[0] * shape[1], 1))


def _xp(x):
    """numpy or cupy for ``x`` (NumPy's without a call: these ops run once per layer call)."""
    return np if type(x) is np.ndarray else backend.get_array_module(x)


def _check_x(x, who: str) -> int:
    """x a non-empty float32/float64 array of shape (N, C, ...); returns C."""
    if not hasattr(x, "dtype") or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{who}: x must be a float32 or float64 array, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim < 2:
        raise ValueError(f"{who}: x must have shape (N, C) or (N, C, ...), got {tuple(x.shape)}")
    if x.size == 0:
        raise ValueError(f"{who}: x must not be empty, got shape {tuple(x.shape)}")
    return int(x.shape[1])


def _check_channel(v, name: str, C: int, dtype, who: str):
    if not hasattr(v, "shape") or tuple(v.shape) != (C,) or v.dtype != dtype:
        raise ValueError(
            f"{who}: {name} must be an array of shape ({C},) and dtype {np.dtype(dtype)}, got "
            f"{getattr(v, 'dtype', type(v).__name__)} of shape {tuple(getattr(v, 'shape', ()))}"
        )
    if not v.flags.c_contiguous:
        raise ValueError(f"{who}: {name} must be contiguous")


def _check_eps(eps, who):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"{who}: eps must be a positive number, got {eps!r}")


def _check_channels(who, x, channels: dict, dtype=None):
    """Every per-channel array of ``channels`` (name -> array, or (array, dtype)) of shape (C,),
    contiguous, of x's dtype unless told otherwise, and on x's device."""
    C = int(x.shape[1])
    for name, v in channels.items():
        v, want = v if isinstance(v, tuple) else (v, x.dtype)
        _check_channel(v, name, C, want, who)
    device_kind(x, *(v[0] if isinstance(v, tuple) else v for v in channels.values()))


def batch_norm_train(x, weight, bias, running_mean=None, running_var=None, eps: float = 1e-5,
                     momentum: float = 0.1, update_running: bool = True, tier: str | None = None,
                     check: bool = True, relu: bool = False):
    """Training forward with batch statistics. Returns (y, mean, invstd)."""
    if check:
        who = "batch_norm_train"
        _check_x(x, who)
        if x.size // x.shape[1] < 2:
            raise ValueError(
                f"{who}: training needs more than one value per channel to estimate a variance, got input shape "
                f"{tuple(x.shape)}"
            )
        _check_eps(eps, who)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{who}: momentum must be in [0, 1], got {momentum!r}")
        running = {"running_mean": running_mean, "running_var": running_var} if update_running else {}
        _check_channels(who, x, {"weight": weight, "bias": bias, **running})
    x3 = _ncs(x)
    C = x3.shape[1]
    xp = _xp(x3)
    if not update_running:  # the kernels take arrays; these are left alone
        running_mean = xp.zeros(C, dtype=x3.dtype)
        running_var = xp.ones(C, dtype=x3.dtype)
    y = xp.empty(x3.shape, dtype=x3.dtype)
    mean = xp.empty(C, dtype=np.float64)
    invstd = xp.empty(C, dtype=np.float64)
    OP.select(x3, tier=tier).forward_train(x3, weight, bias, running_mean, running_var, y, mean, invstd,
                                           float(eps), float(momentum), bool(update_running), bool(relu))
    return y.reshape(x.shape), mean, invstd


def batch_norm_eval(x, weight, bias, running_mean, running_var, eps: float = 1e-5, tier: str | None = None,
                    check: bool = True, relu: bool = False):
    """Evaluation forward: y = γ·(x − running_mean)/√(running_var + ε) + β."""
    if check:
        who = "batch_norm_eval"
        _check_x(x, who)
        _check_eps(eps, who)
        _check_channels(who, x, {"weight": weight, "bias": bias, "running_mean": running_mean,
                                 "running_var": running_var})
    x3 = _ncs(x)
    y = backend.get_array_module(x3).empty_like(x3)
    OP.select(x3, tier=tier).forward_eval(x3, weight, bias, running_mean, running_var, y, float(eps), bool(relu))
    return y.reshape(x.shape)


def batch_norm_backward(dy, x, weight, mean, invstd, batch_stats: bool = True, dweight=None, dbias=None,
                        tier: str | None = None, check: bool = True, relu_y=None):
    """(dx, dγ, dβ) from the forward's input, mean and invstd (float64). ``dweight`` and ``dbias``
    may be given to receive the parameter gradients in place (arena views); ``relu_y``, the
    output of a forward with ``relu=True``, applies that ReLU's mask to dy first."""
    if check:
        who = "batch_norm_backward"
        _check_x(x, who)
        if tuple(dy.shape) != tuple(x.shape):
            raise ValueError(f"{who}: dy has shape {tuple(dy.shape)}, the forward's input {tuple(x.shape)}")
        if dy.dtype != x.dtype:
            raise TypeError(f"{who}: dy has dtype {dy.dtype}, the forward's input {x.dtype}")
        given = {k: v for k, v in (("dweight", dweight), ("dbias", dbias)) if v is not None}
        _check_channels(who, x, {"weight": weight, "mean": (mean, np.float64), "invstd": (invstd, np.float64),
                                 **given})
        device_kind(x, dy)
        if relu_y is not None:
            if tuple(relu_y.shape) != tuple(x.shape) or relu_y.dtype != x.dtype:
                raise ValueError(f"{who}: relu_y must be the forward's output, of shape {tuple(x.shape)} and dtype "
                                 f"{x.dtype}; got {relu_y.dtype} of shape {tuple(relu_y.shape)}")
            device_kind(x, relu_y)
    x3, dy3 = _ncs(x), _ncs(dy)
    C = x3.shape[1]
    xp = _xp(x3)
    dweight = xp.empty(C, dtype=x3.dtype) if dweight is None else dweight
    dbias = xp.empty(C, dtype=x3.dtype) if dbias is None else dbias
    dx = xp.empty(x3.shape, dtype=x3.dtype)
    OP.select(x3, tier=tier).backward(dy3, x3, weight, mean, invstd, dx, dweight, dbias, bool(batch_stats),
                                      None if relu_y is None else _ncs(relu_y))
    return dx.reshape(x.shape), dweight, dbias
