"""Global L2 norm of a flat array on its device, with a non-finite flag, and clipping by it.

``grad_stats(x, stats)`` fills a float64 device array of 4 slots: [Σx², non-finite flag (1.0 if
any x is NaN or ±Inf), applied steps, skipped steps]; with ``count=True`` it also advances the
step counters (see kernels/global_norm/reference.py). ``global_norm(x)`` returns ‖x‖₂ as a 0-d
float64 array on x's device; ``scale_by_norm(x, stats, θ)`` does x ← x·θ/‖x‖ when ‖x‖ > θ, with
the norm read from device memory. None of them synchronizes with the host.

Also home of ``check_flat``, the check the other flat-buffer ops share (one clear error for a
wrong dtype, device, shape or layout).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .registry import register

OP = register("global_norm")


def check_flat(who: str, arrays: dict, size: int | None = None, dtype=None):
    """Check that every array is a contiguous 1-D float32/float64 array, all with the same size,
    dtype and device. Returns (size, dtype, device)."""
    first = None
    for name, a in arrays.items():
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise TypeError(f"{who}: {name} must be an array, got {type(a).__name__}")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{who}: {name} must be float32 or float64, got {a.dtype}")
        if a.ndim != 1 or not a.flags.c_contiguous:
            raise ValueError(f"{who}: {name} must be a contiguous 1-D (flat) array, got shape {tuple(a.shape)}")
        dev = backend.device_of(a)
        if first is None:
            first = (name, a.size, a.dtype, dev)
            if size is not None and a.size != size:
                raise ValueError(f"{who}: {name} has {a.size} elements, expected {size}")
            if dtype is not None and a.dtype != dtype:
                raise TypeError(f"{who}: {name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
            continue
        n0, s0, d0, v0 = first
        if dev != v0:
            raise ValueError(f"{who}: {name} is on the {dev} but {n0} is on the {v0}; put them on one device")
        if a.dtype != d0:
            raise TypeError(f"{who}: {name} has dtype {a.dtype} but {n0} has dtype {d0}; use one dtype")
        if a.size != s0:
            raise ValueError(f"{who}: {name} has {a.size} elements but {n0} has {s0}")
    return first[1], first[2], first[3]


def check_stats(who: str, stats, device: str):
    if (not hasattr(stats, "dtype") or stats.dtype != np.float64 or stats.shape != (4,)
            or not stats.flags.c_contiguous):
        raise ValueError(f"{who}: stats must be a contiguous float64 array of shape (4,), "
                         f"got {getattr(stats, 'dtype', type(stats).__name__)} {getattr(stats, 'shape', '')}")
    if backend.device_of(stats) != device:
        raise ValueError(f"{who}: stats is on the {backend.device_of(stats)}, the arrays on the {device}")


def new_stats(like):
    """A zeroed stats array (4 float64 slots) on the device of ``like``."""
    return backend.get_array_module(like).zeros(4, dtype=np.float64)


def grad_stats(x, stats=None, count: bool = False, *, tier: str | None = None):
    """Write [Σx², non-finite flag] into stats[0:2] (and advance the step counters with
    ``count``); returns ``stats`` (a new one when None). One launch, no host sync."""
    _, _, dev = check_flat("grad_stats", {"x": x})
    if stats is None:
        stats = new_stats(x)
    check_stats("grad_stats", stats, dev)
    OP.select(x, stats, tier=tier).grad_stats(x, stats, bool(count))
    return stats


def global_norm(x, *, tier: str | None = None):
    """‖x‖₂ = √(Σx²) as a 0-d float64 array on x's device (summed in float64; NaN or Inf in x
    gives a NaN or Inf norm). Reading it with float() is the only host sync."""
    stats = grad_stats(x, tier=tier)
    return backend.get_array_module(x).sqrt(stats[:1]).reshape(())


def scale_by_norm(x, stats, max_norm: float, *, tier: str | None = None):
    """x ← x·θ/‖x‖ when ‖x‖ = √stats[0] > θ = max_norm (in place; the norm is read on the device)."""
    _, _, dev = check_flat("scale_by_norm", {"x": x})
    check_stats("scale_by_norm", stats, dev)
    max_norm = float(max_norm)
    if not (max_norm > 0 and np.isfinite(max_norm)):
        raise ValueError(f"scale_by_norm: max_norm must be a finite number > 0, got {max_norm}")
    OP.select(x, stats, tier=tier).scale_by_norm(x, stats, max_norm)
    return x
