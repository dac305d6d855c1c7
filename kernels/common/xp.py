"""The array module of an array, for the reference tier: numpy, or cupy for a CuPy array (the
specification also runs through CuPy's NumPy-like API). Depends on nothing but NumPy, so that the
specification of every kernel can be read and run without gpunet."""
from __future__ import annotations

import numpy as np


def array_module(a):
    """numpy, or cupy when ``a`` is a CuPy array."""
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def to_numpy(a) -> np.ndarray:
    """``a`` as a NumPy array (copied from the GPU for a CuPy array)."""
    return a.get() if hasattr(a, "get") and array_module(a) is not np else np.asarray(a)
