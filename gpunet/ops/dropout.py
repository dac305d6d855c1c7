"""Dropout op: validates arguments, picks a kernel tier (see registry.py), allocates outputs.

Inverted dropout with probability p: y = x·m/(1 − p), m_i ~ Bernoulli(1 − p), and
dx = dy·m/(1 − p). The bits m come from Philox4x32-10 keyed by (seed, layer_id, step, element
index), identical in every tier (kernels/common/philox.py documents the mapping); element j of x
draws as element ``offset`` + j of a larger tensor (a shard of a batch). The forward returns them
packed one bit per element of x (uint8, ceil(n/8) bytes), and the backward reads them back
instead of drawing again. ``check=False`` skips the argument checks, for the Dropout layer,
which has made them (GPUNET_CHECKS=debug runs them anyway).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..kernels.common.philox import keep_threshold
from .registry import register

OP = register("dropout")


def check_p(p, who: str = "dropout") -> float:
    """p as a float, or a ValueError naming p when it is not a number in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{who}: p (the probability of dropping an element) must be in [0, 1), got {p!r}")
    return float(p)


def _check_float(a, name: str):
    if not hasattr(a, "dtype") or a.dtype not in (np.float32, np.float64):
        got = getattr(a, "dtype", type(a).__name__)
        raise TypeError(f"dropout: {name} must be a float32 or float64 array, got {got}")


def mask_bytes(n: int) -> int:
    return (int(n) + 7) // 8


def dropout_forward(x, p: float, seed: int, layer_id: int, step: int, tier: str | None = None,
                    check: bool = True, offset: int = 0):
    """(y, mask): y = x·m/(1 − p), m_j drawn for (seed, layer_id, step, offset + j); mask packs m (uint8)."""
    if check:
        p = check_p(p)
        _check_float(x, "x")
        for name, v in (("seed", seed), ("layer_id", layer_id), ("step", step), ("offset", offset)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"dropout: {name} must be a non-negative integer, got {v!r}")
        if offset >= 1 << 62:
            raise ValueError(f"dropout: offset must be below 2^62, got {offset!r}")
    xp = backend.get_array_module(x)
    if not x.flags.c_contiguous:
        x = xp.ascontiguousarray(x)
    k = OP.select(x, tier=tier)
    y = xp.empty_like(x)
    mask = xp.empty(mask_bytes(x.size), dtype=xp.uint8)
    k.forward(x, y, mask, int(seed), int(layer_id), int(step), keep_threshold(p), 1.0 / (1.0 - p), int(offset))
    return y, mask


def dropout_backward(dy, mask, p: float, tier: str | None = None, check: bool = True):
    """dx = dy·m/(1 − p), m unpacked from the forward's ``mask``."""
    if check:
        _check_backward(dy, mask, p)
    xp = backend.get_array_module(dy)
    if not dy.flags.c_contiguous:
        dy = xp.ascontiguousarray(dy)
    k = OP.select(dy, mask, tier=tier) if check else OP.select(dy, tier=tier)
    dx = xp.empty_like(dy)
    k.backward(dy, mask, dx, 1.0 / (1.0 - p))
    return dx


def _check_backward(dy, mask, p):
    check_p(p)
    _check_float(dy, "dy")
    if getattr(mask, "dtype", None) != np.uint8 or mask.ndim != 1 or mask.size != mask_bytes(dy.size):
        raise ValueError(
            f"dropout: mask must be the forward's uint8 array of {mask_bytes(dy.size)} bytes for dy of shape "
            f"{tuple(dy.shape)}, got {getattr(mask, 'dtype', type(mask).__name__)} of shape "
            f"{tuple(getattr(mask, 'shape', ()))}"
        )
