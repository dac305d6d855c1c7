"""Argument checks the ops share: flat buffers (the optimizer step, the global norm, the EMA) and
output or input arrays of the convolution and pooling ops — one clear error naming the argument."""
from __future__ import annotations

import numpy as np

from .. import backend


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


def check_out(out, shape, like, who):
    """``out`` checked (C-contiguous, ``shape``, ``like``'s dtype and device), or a new array."""
    xp = backend.get_array_module(like)
    if out is None:
        return xp.empty(shape, dtype=like.dtype)
    if tuple(out.shape) != tuple(shape) or out.dtype != like.dtype:
        raise ValueError(f"{who}(out): expected shape {tuple(shape)} and dtype {like.dtype}, "
                         f"got {tuple(out.shape)} {out.dtype}")
    if not out.flags.c_contiguous or backend.device_of(out) != backend.device_of(like):
        raise ValueError(f"{who}(out): must be C-contiguous and on the {backend.device_of(like)}")
    return out


def contiguous_float(a, who, arg):
    """``a`` as a C-contiguous array, after checking that it is float32 or float64."""
    if not np.issubdtype(a.dtype, np.floating) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{who}({arg}): expected float32 or float64, got {a.dtype}")
    return backend.get_array_module(a).ascontiguousarray(a)
