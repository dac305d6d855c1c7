"""Dropout, CUDA C tier: dropout.cu through cupy.RawModule, compiled once per process.

kernels/common/philox.cuh is pasted in place of its #include, so CuPy's compile cache keys on
the full source. Launches are asynchronous (no host synchronization). CuPy is imported on first
use; ``device`` is the seam through which tests run the same host code on a CPU emulation of
the CUDA C (tests/kernels/cuda_host_emulator.py).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..common.philox import dropout_counter_hi, dropout_key

THREADS = 256
_INCLUDE = '#include "../common/philox.cuh"'


def source() -> str:
    """dropout.cu with philox.cuh pasted in."""
    here = Path(__file__).resolve().parent
    src = (here / "dropout.cu").read_text()
    return src.replace(_INCLUDE, (here.parent / "common" / "philox.cuh").read_text())


class CupyDevice:
    """Kernels, SM count and pointers from CuPy (the real GPU)."""

    def __init__(self, source_text: str):
        import cupy

        self._cupy = cupy
        self._module = cupy.RawModule(code=source_text)
        self._kernels = {}
        self.sm_count = cupy.cuda.Device().attributes["MultiProcessorCount"]

    def kernel(self, name: str):
        if name not in self._kernels:
            self._kernels[name] = self._module.get_function(name)
        return self._kernels[name]

    @staticmethod
    def ptr(a) -> int:
        return a.data.ptr


device = None  # set to a CupyDevice on first use (or to an emulator by tests)


def _device():
    global device
    if device is None:
        device = CupyDevice(source())
    return device


@functools.lru_cache(maxsize=None)
def _suffix(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"dropout: the CUDA C kernels take float32 or float64, got {dtype}")


def _grid(dev, work: int) -> int:
    return max(1, min(32 * dev.sm_count, (work + THREADS - 1) // THREADS))


def _aligned(dev, *arrays) -> np.int32:
    return np.int32(all(dev.ptr(a) % 16 == 0 for a in arrays))


def forward(x, y, mask, seed, layer_id, step, threshold, scale):
    """y = x · m · scale and mask = m packed; see reference.forward."""
    dev = _device()
    k0, k1 = dropout_key(seed, layer_id)
    c2, c3 = dropout_counter_hi(step)
    n, nbytes = x.size, mask.size
    if nbytes == 0:
        return
    u32, i64 = np.uint32, np.int64
    dev.kernel("dropout_fwd_" + _suffix(x.dtype))(
        (_grid(dev, nbytes),), (THREADS,),
        (x, y, mask, i64(n), i64(nbytes), u32(k0), u32(k1), u32(c2), u32(c3), u32(threshold),
         x.dtype.type(scale), _aligned(dev, x, y)))


def backward(dy, mask, dx, scale):
    """dx = dy · m · scale; see reference.backward."""
    dev = _device()
    n, nbytes = dy.size, mask.size
    if nbytes == 0:
        return
    dev.kernel("dropout_bwd_" + _suffix(dy.dtype))(
        (_grid(dev, nbytes),), (THREADS,),
        (dy, mask, dx, np.int64(n), np.int64(nbytes), dy.dtype.type(scale), _aligned(dev, dy, dx)))


def philox(rows, out):
    """Philox4x32-10 of the (m, 6) uint32 rows (c0, c1, c2, c3, k0, k1) into ``out`` (m, 4) uint32."""
    dev = _device()
    dev.kernel("philox4x32_10_kernel")((_grid(dev, rows.shape[0]),), (THREADS,), (rows, out, np.int32(rows.shape[0])))
