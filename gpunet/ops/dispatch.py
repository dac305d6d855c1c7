"""Kernel tier selection.

Every custom op exists in four tiers (see kernels/<op>/): ``reference`` (NumPy, the
specification), ``numba_cpu``, ``numba_cuda`` and ``cupy`` (CUDA C through cupy.RawModule).
NumPy arrays go to numba_cpu and CuPy arrays to cupy. ``GPUNET_KERNELS`` forces a tier:

| GPUNET_KERNELS | NumPy arrays | CuPy arrays |
| --- | --- | --- |
| (unset) or auto | numba_cpu | cupy |
| reference | reference | reference (run through CuPy's NumPy-like API) |
| numba | numba_cpu | numba_cuda |
| cupy | error: needs GPU arrays | cupy |
"""
from __future__ import annotations

import os

from .. import backend

TIERS = ("reference", "numba_cpu", "numba_cuda", "cupy")
_CHOICES = ("auto", "reference", "numba", "cupy")


def forced() -> str:
    v = os.environ.get("GPUNET_KERNELS", "auto").strip().lower() or "auto"
    if v not in _CHOICES:
        raise ValueError(f"GPUNET_KERNELS: expected one of {_CHOICES}, got {v!r}")
    return v


def select_tier(*arrays, tier: str | None = None) -> str:
    """The tier that runs an op on ``arrays`` (all on one device), honouring GPUNET_KERNELS.

    ``tier`` (one of TIERS) overrides everything; it is what the test harness uses.
    """
    devices = {backend.device_of(a) for a in arrays if a is not None}
    if len(devices) > 1:
        raise ValueError(f"arrays on different devices ({sorted(devices)}); move them to one device first")
    on_gpu = devices == {"gpu"}
    if tier is not None:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
        if tier in ("numba_cuda", "cupy") and not on_gpu and not _cudasim():
            raise RuntimeError(f"kernel tier {tier!r} needs GPU (CuPy) arrays")
        if tier == "numba_cpu" and on_gpu:
            raise RuntimeError("kernel tier 'numba_cpu' needs NumPy arrays; these are on the GPU")
        return tier
    mode = forced()
    if mode == "reference":
        return "reference"
    if mode == "numba":
        return "numba_cuda" if on_gpu else "numba_cpu"
    if mode == "cupy":
        if not on_gpu:
            raise RuntimeError(
                "GPUNET_KERNELS=cupy forces the CUDA C tier, which needs GPU arrays; these are NumPy arrays "
                "(use the GPU backend, or unset GPUNET_KERNELS)"
            )
        return "cupy"
    return "cupy" if on_gpu else "numba_cpu"


def _cudasim() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
