"""The op registry: every custom op, its four kernel tiers, and which tier runs it.

Each op lives in ``kernels/<op>/`` as four modules with one API: ``reference`` (NumPy, the
specification), ``numba_cpu``, ``numba_cuda`` and ``cupy_tier`` (CUDA C through cupy.RawModule).
An op registers once (``OP = register("batchnorm")``); ``OP.select(*arrays)`` returns the tier
module that runs it on those arrays, resolved once per (device kind, ``GPUNET_KERNELS``) and
cached. NumPy arrays go to numba_cpu and CuPy arrays to cupy unless ``GPUNET_KERNELS`` forces a
tier:

| GPUNET_KERNELS | NumPy arrays | CuPy arrays |
| --- | --- | --- |
| (unset) or auto | numba_cpu | cupy |
| reference | reference | reference (run through CuPy's NumPy-like API) |
| numba | numba_cpu | numba_cuda |
| cupy | error: needs GPU arrays | cupy |

``GPUNET_KERNELS`` is read when gpunet is imported, when ``gpunet.use`` picks a backend, and on
``reset()`` — not on every call. ``tier=`` (one of ``TIERS``) overrides it for one call; the tests
use it to run every tier.

``GPUNET_CHECKS=debug`` (read at the same moments, into ``DEBUG``) also runs the argument checks
that repeat one the caller has made: an op called by its layer (which checked its input and
owns the other arrays), the fused step called by an optimizer (which built its buffers). Public
entry points — layers, losses, ``gpunet.ops`` functions called directly, ``clip_grad_norm``,
``gpunet.optim.ema`` — check their arguments always.
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from .. import backend

TIERS = ("reference", "numba_cpu", "numba_cuda", "cupy")
MODES = ("auto", "reference", "numba", "cupy")
_FILES = {"reference": "reference", "numba_cpu": "numba_cpu", "numba_cuda": "numba_cuda", "cupy": "cupy_tier"}
# mode -> tier for (NumPy arrays, CuPy arrays); None: that mode cannot run on that device
_TABLE = {"auto": ("numba_cpu", "cupy"), "reference": ("reference", "reference"),
          "numba": ("numba_cpu", "numba_cuda"), "cupy": (None, "cupy")}

_mode = "auto"
DEBUG = False  # GPUNET_CHECKS=debug


def read_mode() -> str:
    """``GPUNET_KERNELS`` checked: one of ``MODES`` ("auto" when unset)."""
    v = os.environ.get("GPUNET_KERNELS", "auto").strip().lower() or "auto"
    if v not in MODES:
        raise ValueError(f"GPUNET_KERNELS: expected one of {MODES}, got {v!r}")
    return v


def read_checks() -> bool:
    """``GPUNET_CHECKS`` checked: True for "debug", False when unset."""
    v = os.environ.get("GPUNET_CHECKS", "").strip().lower()
    if v not in ("", "debug"):
        raise ValueError(f"GPUNET_CHECKS: expected 'debug' or unset, got {v!r}")
    return v == "debug"


def reset() -> str:
    """Read ``GPUNET_KERNELS`` and ``GPUNET_CHECKS`` again and forget every op's resolved tier;
    returns the mode."""
    global _mode, DEBUG
    _mode, DEBUG = read_mode(), read_checks()
    for op in OPS.values():
        op._chosen = [None, None]
    return _mode


def mode() -> str:
    """The ``GPUNET_KERNELS`` mode in force."""
    return _mode


def device_kind(*arrays) -> int:
    """0 for NumPy arrays, 1 for CuPy arrays (None entries ignored); a ValueError when they are on
    different devices."""
    kind = None
    for a in arrays:
        if a is None:
            continue
        k = 0 if type(a) is np.ndarray or not backend.is_gpu_array(a) else 1
        if kind is None:
            kind = k
        elif k != kind:
            devices = sorted({backend.device_of(b) for b in arrays if b is not None})
            raise ValueError(f"arrays on different devices ({devices}); move them to one device first")
    return kind or 0


def choose_tier(kind: int, tier: str | None = None) -> str:
    """The tier for arrays of ``kind`` (0 NumPy, 1 CuPy): ``tier`` if given (checked), else the
    mode's; a RuntimeError says when that tier cannot run on those arrays."""
    if tier is not None:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
        if tier in ("numba_cuda", "cupy") and not kind and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
            raise RuntimeError(f"kernel tier {tier!r} needs GPU (CuPy) arrays")
        if tier == "numba_cpu" and kind:
            raise RuntimeError("kernel tier 'numba_cpu' needs NumPy arrays; these are on the GPU")
        return tier
    chosen = _TABLE[_mode][kind]
    if chosen is None:
        raise RuntimeError(
            f"GPUNET_KERNELS={_mode} forces the CUDA C tier, which needs GPU arrays; these are NumPy arrays "
            "(use the GPU backend, or unset GPUNET_KERNELS)")
    return chosen


class Op:
    """One custom op: the package ``gpunet.kernels.<name>`` and its tier modules."""

    def __init__(self, name: str):
        self.name = name
        self._modules = {}
        self._chosen = [None, None]  # the tier module for NumPy / CuPy arrays under the current mode

    def module(self, tier: str):
        """The kernel module of ``tier`` (imported on first use)."""
        m = self._modules.get(tier)
        if m is None:
            if tier not in _FILES:
                raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
            m = self._modules[tier] = importlib.import_module(f"gpunet.kernels.{self.name}.{_FILES[tier]}")
        return m

    def select(self, *arrays, tier: str | None = None):
        """The tier module that runs this op on ``arrays`` (all on one device)."""
        kind = 0 if len(arrays) == 1 and type(arrays[0]) is np.ndarray else device_kind(*arrays)
        if tier is None:
            m = self._chosen[kind]
            if m is None:
                m = self._chosen[kind] = self.module(choose_tier(kind))
            return m
        return self.module(choose_tier(kind, tier))

    def tier_functions(self, name: str, tiers=TIERS) -> dict:
        """{tier: the kernel-style function ``name`` of that tier}, for ``compare_tiers``."""
        return {t: getattr(self.module(t), name) for t in tiers}

    def __repr__(self):
        return f"Op({self.name!r})"


OPS: dict[str, Op] = {}


def register(name: str) -> Op:
    """The op ``name`` (kernels/<name>/), registered on first call."""
    op = OPS.get(name)
    if op is None:
        op = OPS[name] = Op(name)
    return op


def select_tier(*arrays, tier: str | None = None) -> str:
    """The name of the tier that runs an op on ``arrays`` (see the table above)."""
    return choose_tier(device_kind(*arrays), tier)


_mode, DEBUG = read_mode(), read_checks()
