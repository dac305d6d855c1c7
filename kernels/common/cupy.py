"""Device plumbing shared by every CUDA C tier (``kernels/<op>/cupy_tier.py``).

Each CUDA C tier has a ``source()`` (its .cu file with the shared headers pasted in, so that
CuPy's compile cache keys on the full text) and a ``device`` seam: None for the real GPU, or a
stand-in that tests put there (tests/kernels/cuda_host_emulator.py runs the same host code on a
CPU emulation of the CUDA C). ``compiled(source)`` is the one caching policy: a ``CupyDevice`` per
(source, GPU), compiled on first use (CuPy also caches the binary on disk). CuPy is imported only
when a GPU is used. Nothing here synchronizes with the host.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

OPTIONS = ("-std=c++17",)
THREADS = 256  # threads per block of the grid-stride element-wise kernels
_COMMON = Path(__file__).resolve().parent
_INCLUDE = re.compile(r'^#include "\.\./common/(\w+\.cuh)"[ \t]*$', re.M)


def read_source(path) -> str:
    """The text of the .cu file ``path`` with every ``#include "../common/<name>.cuh"`` replaced
    by that header (nvcc resolves the same lines from the file's folder)."""
    return _INCLUDE.sub(lambda m: (_COMMON / m.group(1)).read_text(), Path(path).read_text())


def sourced(path):
    """A CUDA C tier's ``source()``: ``read_source(path)``, one function object per tier (the key
    under which ``compiled`` caches its kernels)."""
    return functools.partial(read_source, Path(path))


class CupyDevice:
    """The kernels of one CUDA C source on one GPU, its SM count and CuPy array pointers."""

    def __init__(self, source_text: str):
        import cupy

        self.xp = cupy
        self._module = cupy.RawModule(code=source_text, options=OPTIONS)
        self._kernels = {}
        self.sm_count = int(cupy.cuda.Device().attributes["MultiProcessorCount"])

    def kernel(self, name: str):
        k = self._kernels.get(name)
        if k is None:
            k = self._kernels[name] = self._module.get_function(name)
        return k

    @staticmethod
    def ptr(a) -> int:
        return a.data.ptr


_compiled: dict = {}


def compiled(source) -> CupyDevice:
    """The ``CupyDevice`` of ``source()`` on the current GPU, built once per (source, GPU)."""
    import cupy

    key = (source, cupy.cuda.runtime.getDevice())
    dev = _compiled.get(key)
    if dev is None:
        dev = _compiled[key] = CupyDevice(source())
    return dev


@functools.lru_cache(maxsize=None)
def suffix(dtype) -> str:
    """"f32" or "f64": the kernel name suffix of a float dtype."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"the CUDA C kernels take float32 or float64 arrays, got {dtype}")


def aligned(dev, *arrays) -> np.int32:
    """1 when every array's data starts on a 16-byte boundary (vec.cuh's loads are safe), else 0."""
    return np.int32(all(dev.ptr(a) % 16 == 0 for a in arrays))


def grid(dev, n_items: int, threads: int = THREADS, per_sm: int = 8, cap: int = 1 << 16) -> int:
    """Blocks for a grid-stride loop over ``n_items``: enough to fill the device, no more."""
    return max(1, min(-(-n_items // threads), dev.sm_count * per_sm, cap))
