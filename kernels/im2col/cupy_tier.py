"""im2col / col2im, CUDA C tier: im2col.cu through cupy.RawModule, compiled once per process.

Launches are asynchronous (no host synchronization), on CuPy's current stream. ``device`` is the
seam through which tests run the same host code on a CPU emulation of the CUDA C
(tests/kernels/cuda_host_emulator.py). CuPy is imported on first use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

THREADS = 256  # channel_sum's shared-memory tree assumes exactly this block size


def source() -> str:
    return (Path(__file__).resolve().parent / "im2col.cu").read_text()


class CupyDevice:
    """Kernels, SM count and pointers from CuPy (the real GPU)."""

    def __init__(self, source_text: str):
        import cupy

        self._module = cupy.RawModule(code=source_text, options=("--std=c++14",))
        self._kernels = {}
        self.sm_count = cupy.cuda.Device().attributes["MultiProcessorCount"]

    def kernel(self, name: str):
        if name not in self._kernels:
            self._kernels[name] = self._module.get_function(name)
        return self._kernels[name]

    @staticmethod
    def ptr(a) -> int:
        return a.data.ptr


device = None  # a CupyDevice on first use (or an emulator, in tests)


def _device():
    global device
    if device is None:
        device = CupyDevice(source())
    return device


def _suffix(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"im2col: the CUDA C kernels take float32 or float64, got {dtype}")


def _run(name, dtype, work, args, blocks=None):
    dev = _device()
    if blocks is None:
        blocks = max(1, min(32 * dev.sm_count, (work + THREADS - 1) // THREADS))
    dev.kernel(f"{name}_{_suffix(dtype)}")((blocks,), (THREADS,), args)


def _geom(x_shape, kh, kw, sh, sw, ph, pw):
    n, c, h, w = (int(s) for s in x_shape)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return tuple(np.int32(v) for v in (n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow))


def im2col(x, cols, kh, kw, sh, sw, ph, pw):
    if cols.size:
        _run("im2col", x.dtype, cols.size, (x, cols) + _geom(x.shape, kh, kw, sh, sw, ph, pw))


def col2im(cols, dx, kh, kw, sh, sw, ph, pw):
    if dx.size:
        _run("col2im", dx.dtype, dx.size, (cols, dx) + _geom(dx.shape, kh, kw, sh, sw, ph, pw))


def _ncp(a):
    n, c = a.shape[:2]
    return np.int32(n), np.int32(c), np.int32(a.size // max(n * c, 1))


def cnhw_to_nchw(yc, bias, y):
    if y.size:
        _run("cnhw_to_nchw", y.dtype, y.size, (yc, bias, y) + _ncp(y))


def nchw_to_cnhw(dy, dyc, dbias):
    if dy.size:
        _run("nchw_to_cnhw", dy.dtype, dy.size, (dy, dyc) + _ncp(dy))
        _run("channel_sum", dy.dtype, 0, (dy, dbias) + _ncp(dy), blocks=dy.shape[1])
    elif dbias.size:
        dbias[...] = 0
