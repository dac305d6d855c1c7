"""CUDA C tier of the global norm (global_norm.cu through cupy.RawModule), plus the device seam
and launch helpers that the CUDA C tiers of the optimizer update and the EMA share.

Each CUDA C tier module has a ``source()`` and a ``device`` (None until first use): a
``CupyDevice`` that compiles the source once per process and GPU (CuPy also caches the binary
on disk) and hands out kernels, the SM count and array pointers. Tests may put a CPU emulator
there instead (tests/kernels/cuda_host_emulator.py). Arrays must be contiguous; 16-byte loads are
used only when every flat buffer is 16-byte aligned. No call here synchronizes with the host.
The grad_stats workspace (partials and the last-block ticket) is per device: launches of it must
not run concurrently on two streams.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

THREADS = 256       # threads per block of every elementwise kernel
NORM_THREADS = 256  # must match global_norm.cu
MAX_BLOCKS = 2048   # must match global_norm.cu


class CupyDevice:
    """Kernels of one CUDA C source on the current GPU, its SM count, pointers of CuPy arrays."""

    def __init__(self, source_text: str):
        import cupy

        self.xp = cupy
        self._module = cupy.RawModule(code=source_text, options=("-std=c++17",))
        self._kernels = {}
        self.sm_count = int(cupy.cuda.Device().attributes["MultiProcessorCount"])

    def kernel(self, name: str):
        if name not in self._kernels:
            self._kernels[name] = self._module.get_function(name)
        return self._kernels[name]

    @staticmethod
    def ptr(a) -> int:
        return a.data.ptr


def gpu_device(cache: dict, source):
    """The CupyDevice of ``source()`` for the current GPU, built once per GPU into ``cache``."""
    import cupy

    key = cupy.cuda.runtime.getDevice()
    if key not in cache:
        cache[key] = CupyDevice(source())
    return cache[key]


def suffix(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"CUDA C kernels take float32 or float64 arrays, got {dtype}")


def aligned(dev, *arrays) -> np.int32:
    """1 when every array's data starts on a 16-byte boundary (float4 / double2 loads are safe)."""
    return np.int32(all(dev.ptr(a) % 16 == 0 for a in arrays))


def grid(dev, n_items: int, threads: int = THREADS, per_sm: int = 8, cap: int = 1 << 16) -> int:
    """Blocks for a grid-stride loop over ``n_items``: enough to fill the device, no more."""
    return max(1, min(-(-n_items // threads), dev.sm_count * per_sm, cap))


# ----------------------------------------------------------------- this module's kernels

device = None  # None: the current GPU; tests may put a CPU emulator here
_per_gpu = {}


def _dev():
    return device if device is not None else gpu_device(_per_gpu, source)


def source() -> str:
    return Path(__file__).with_name("global_norm.cu").read_text()


def _workspace(dev):
    """Partial sums, partial flags and the ticket counter (zero at rest: the last block of every
    launch resets it), allocated once per device."""
    ws = getattr(dev, "_gpunet_norm_workspace", None)
    if ws is None:
        xp = dev.xp
        ws = (xp.zeros(MAX_BLOCKS, np.float64), xp.zeros(MAX_BLOCKS, np.uint32), xp.zeros(1, np.uint32))
        dev._gpunet_norm_workspace = ws
    return ws


def grad_stats(x, stats, count=False):
    dev = _dev()
    n = x.size
    vec = aligned(dev, x)
    blocks = grid(dev, n // 4 if vec else n, NORM_THREADS, cap=MAX_BLOCKS)
    part_sum, part_bad, ticket = _workspace(dev)
    dev.kernel("grad_stats_" + suffix(x.dtype))(
        (blocks,), (NORM_THREADS,),
        (x, np.int64(n), vec, stats, np.int32(1 if count else 0), part_sum, part_bad, ticket))


def scale_by_norm(x, stats, max_norm):
    dev = _dev()
    n = x.size
    vec = aligned(dev, x)
    dev.kernel("scale_by_norm_" + suffix(x.dtype))(
        (grid(dev, n // 4 if vec else n),), (THREADS,), (x, np.int64(n), vec, stats, np.float64(max_norm)))
