"""The array layer: NumPy on the CPU, CuPy on the GPU, one switch between them.

``use("cpu" | "gpu" | "auto")`` picks the backend ("numpy" and "cupy" are aliases) and reads
``GPUNET_KERNELS`` again (gpunet/ops/registry.py); the
``GPUNET_BACKEND`` environment variable sets it at import. "auto" (the default) takes CuPy when a
GPU is really usable — ``import cupy`` succeeds on machines without one, so usability is decided
by a real allocation, probed once per process.

Seeds: ``seed(n)`` seeds initializers, shuffling and dropout; ``rng()`` hands out the host
generator they draw from. Initial weights are drawn on the host, so the same seed gives the same
model on the CPU and on the GPU.
"""
from __future__ import annotations

import os
import sys
import types

import numpy as np

_ALIASES = {"cpu": "cpu", "numpy": "cpu", "gpu": "gpu", "cupy": "gpu", "cuda": "gpu", "auto": "auto"}

_gpu_probe: tuple[bool, str] | None = None  # (usable, reason) once probed
_active = "cpu"
_xp: types.ModuleType = np
_seed = 0
_rng = np.random.default_rng(0)


def _probe_gpu() -> tuple[bool, str]:
    """Return (usable, reason); decided once, by allocating and computing on the device."""
    global _gpu_probe
    if _gpu_probe is None:
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device found")
            a = cupy.arange(4, dtype=cupy.float32)
            if float((a * 2).sum()) != 12.0:
                raise RuntimeError("a test computation on the GPU gave a wrong result")
            _gpu_probe = (True, "")
        except Exception as exc:  # ImportError, CUDARuntimeError, driver errors ...
            _gpu_probe = (False, f"{type(exc).__name__}: {exc}")
    return _gpu_probe


def gpu_available() -> bool:
    """True when CuPy is installed and can allocate and compute on a GPU."""
    return _probe_gpu()[0]


def _parse_device(name) -> tuple[str | None, int | None]:
    """("cpu" | "gpu" | "auto", GPU index or None) from "cpu", "gpu", "gpu:1", "cuda:0", ...; (None, None)
    when it is not a device name."""
    base, sep, index = str(name).lower().partition(":")
    key = _ALIASES.get(base)
    if not sep:
        return key, None
    if key != "gpu" or not index.isdigit():
        return None, None
    return key, int(index)


def use(name: str = "auto") -> str:
    """Select the backend: "cpu"/"numpy", "gpu"/"cupy"/"cuda" or "auto"; "gpu:1" (or "cuda:1")
    also makes GPU 1 the current device (CuPy's ``Device(1).use()``). Returns "cpu" or "gpu"."""
    global _active, _xp
    key, index = _parse_device(name)
    if key is None:
        raise ValueError(f"use(name): expected one of {sorted(_ALIASES)}, or 'gpu:N' / 'cuda:N' for GPU number N, "
                         f"got {name!r}")
    if key == "auto":
        key = "gpu" if gpu_available() else "cpu"
    if key == "gpu":
        ok, why = _probe_gpu()
        if not ok:
            raise RuntimeError(
                f"use('gpu'): no usable GPU ({why}). Install CuPy for your CUDA version "
                "(pip install 'gpunet[cuda12]' or 'gpunet[cuda13]') on a machine with an NVIDIA GPU, "
                "or use('cpu')."
            )
        import cupy

        if index is not None:
            count = cupy.cuda.runtime.getDeviceCount()
            if index >= count:
                raise ValueError(f"use({name!r}): this machine has {count} GPU{'s' if count != 1 else ''}, "
                                 f"numbered 0 to {count - 1}")
            cupy.cuda.Device(index).use()
        _xp = cupy
    else:
        _xp = np
    _active = key
    registry = sys.modules.get("gpunet.ops.registry")
    if registry is not None:  # GPUNET_KERNELS is read again when a backend is chosen
        registry.reset()
    return key


def active() -> str:
    """The active backend: "cpu" or "gpu"."""
    return _active


def __getattr__(name: str):
    if name == "xp":
        return _xp
    raise AttributeError(f"module 'gpunet.backend' has no attribute {name!r}")


_cupy_module = None  # cupy once imported; False if it cannot be imported


def _cupy_or_none():
    """The cupy module, or None; a failed import is remembered (retrying it costs a path search)."""
    global _cupy_module
    if _cupy_module is None:
        try:
            import cupy

            _cupy_module = cupy
        except Exception:
            _cupy_module = False
    return _cupy_module or None


def is_gpu_array(a) -> bool:
    if isinstance(a, np.ndarray):
        return False
    cp = _cupy_or_none()
    return cp is not None and isinstance(a, cp.ndarray)


def get_array_module(a) -> types.ModuleType:
    """numpy or cupy, whichever owns ``a``."""
    return _cupy_or_none() if is_gpu_array(a) else np


def device_of(a) -> str:
    """"gpu" for a CuPy array, "cpu" otherwise."""
    return "gpu" if is_gpu_array(a) else "cpu"


_FOREIGN = {
    "torch": "a torch.Tensor: convert it with t.numpy() (t.cpu().numpy() for a GPU tensor), or "
             "cupy.from_dlpack(t) to keep a CUDA tensor on the GPU",
    "tensorflow": "a TensorFlow tensor: convert it with t.numpy()",
    "jax": "a JAX array: convert it with numpy.asarray(a)",
    "jaxlib": "a JAX array: convert it with numpy.asarray(a)",
}


def describe_non_array(a) -> str:
    """What ``a`` is, for an error that expected a NumPy or CuPy array (with a conversion hint
    for another framework's tensor)."""
    return _FOREIGN.get(type(a).__module__.split(".")[0], type(a).__name__)


def is_array(a) -> bool:
    """True for a NumPy or CuPy array."""
    return isinstance(a, np.ndarray) or is_gpu_array(a)


def to_numpy(a) -> np.ndarray:
    """A NumPy array with the contents of ``a`` (copies from the GPU; no copy for NumPy input)."""
    if is_gpu_array(a):
        return a.get()
    return np.asarray(a)


def read_back(a) -> np.ndarray:
    """``a`` copied to the host (a host synchronization on the GPU): the helper through which the
    Trainer reads device values, at its planned read-backs only."""
    return to_numpy(a)


def to_device(a, device: str | None = None, dtype=None):
    """``a`` as an array of the given device ("cpu"/"gpu"; default: the active backend)."""
    device = _active if device is None else _ALIASES.get(device, device)
    if device not in ("cpu", "gpu"):
        raise ValueError(f"to_device(device): expected 'cpu' or 'gpu', got {device!r}")
    if device == "gpu":
        if not gpu_available():
            raise RuntimeError(f"to_device(device='gpu'): no usable GPU ({_probe_gpu()[1]})")
        import cupy

        return cupy.asarray(a, dtype=dtype)
    return np.asarray(to_numpy(a), dtype=dtype)


def seed(n: int) -> None:
    """Seed initializers, shuffling and dropout (one seed for all of them)."""
    global _seed, _rng
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"seed(n): expected a non-negative integer, got {n!r}")
    if n < 0:
        raise ValueError(f"seed(n): expected a non-negative integer, got {n!r}")
    n = int(n)
    _seed = n
    _rng = np.random.default_rng(n)


def get_seed() -> int:
    """The seed last given to ``seed`` (0 by default); dropout keys its masks with it."""
    return _seed


def rng() -> np.random.Generator:
    """The host random generator that initializers and shuffling draw from."""
    return _rng


def get_rng_state() -> dict:
    return {"seed": _seed, "bit_generator": _rng.bit_generator.state}


def set_rng_state(state: dict) -> None:
    global _seed, _rng
    _seed = int(state["seed"])
    _rng = np.random.default_rng()
    _rng.bit_generator.state = state["bit_generator"]


def _init_from_env() -> None:
    name = os.environ.get("GPUNET_BACKEND", "auto")
    if _parse_device(name)[0] is None:
        raise ValueError(f"GPUNET_BACKEND: expected one of {sorted(_ALIASES)}, got {name!r}")
    use(name)


_init_from_env()
