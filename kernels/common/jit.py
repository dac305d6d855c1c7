"""``numba.njit`` with the options every CPU kernel of gpunet shares.

``error_model="numpy"``: a division follows IEEE 754 (x/0 is ±inf or NaN, as in NumPy, PyTorch
and the CUDA tiers) instead of Numba's default Python model, which tests every divisor for zero
and raises ZeroDivisionError. That test is a branch to an exception inside the loop, and it kept
LLVM from vectorizing Adam's update (no packed division or square root in its machine code): over
48,100 float32 values it took 207 µs with the test and 29 µs without, on one AVX2 core. A nonzero
divisor gives the same bits under both models.
"""
from __future__ import annotations

import numba


def njit(*args, **options):
    """``numba.njit(*args, error_model="numpy", **options)``; used bare (``@njit``) or called."""
    options.setdefault("error_model", "numpy")
    return numba.njit(*args, **options)
