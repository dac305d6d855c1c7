"""CUDA C tier of the global norm (global_norm.cu through cupy.RawModule), plus the module
loader and launch helpers the other CUDA C tiers of the optimizer kernels share.

Modules are compiled once per process and device (CuPy also caches the binary on disk). Arrays
must be contiguous CuPy arrays; 16-byte loads are used only when every flat buffer is 16-byte
aligned. No call here synchronizes with the host.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

THREADS = 256      # threads per block of every elementwise kernel
NORM_THREADS = 256  # must match global_norm.cu
MAX_BLOCKS = 2048   # must match global_norm.cu


def _cupy():
    import cupy

    return cupy


@functools.lru_cache(maxsize=None)
def _module(path: str, device_id: int):
    cupy = _cupy()
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=Path(path).read_text(), options=("-std=c++17",))


def kernel(cu_file: Path, name: str):
    """The ``extern "C"`` kernel ``name`` of ``cu_file``, compiled once per process and device."""
    cupy = _cupy()
    return _module(str(cu_file), cupy.cuda.runtime.getDevice()).get_function(name)


def suffix(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"CUDA C kernels take float32 or float64 arrays, got {dtype}")


def aligned(*arrays) -> int:
    """1 when every array's data starts on a 16-byte boundary (float4 / double2 loads are safe)."""
    return int(all(a.data.ptr % 16 == 0 for a in arrays))


@functools.lru_cache(maxsize=None)
def _sm_count(device_id: int) -> int:
    return int(_cupy().cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"])


def grid(n_items: int, threads: int = THREADS, per_sm: int = 8, cap: int = 1 << 16) -> int:
    """Blocks for a grid-stride loop over ``n_items``: enough to fill the device, no more."""
    sms = _sm_count(_cupy().cuda.runtime.getDevice())
    return max(1, min(-(-n_items // threads), sms * per_sm, cap))


@functools.lru_cache(maxsize=None)
def _workspace(device_id: int):
    """Per-device scratch for grad_stats: partial sums, partial flags and the ticket counter
    (zero at rest: the last block of every launch resets it)."""
    cupy = _cupy()
    with cupy.cuda.Device(device_id):
        return (cupy.zeros(MAX_BLOCKS, cupy.float64), cupy.zeros(MAX_BLOCKS, cupy.int32),
                cupy.zeros(1, cupy.uint32))


_CU = Path(__file__).with_name("global_norm.cu")


def grad_stats(x, stats, count=False):
    n = x.size
    vec = aligned(x)
    blocks = grid(n // 4 if vec else n, NORM_THREADS, cap=MAX_BLOCKS)
    part_sum, part_bad, ticket = _workspace(_cupy().cuda.runtime.getDevice())
    kernel(_CU, "grad_stats_" + suffix(x.dtype))(
        (blocks,), (NORM_THREADS,),
        (x, np.int64(n), np.int32(vec), stats, np.int32(1 if count else 0), part_sum, part_bad, ticket))


def scale_by_norm(x, stats, max_norm):
    n = x.size
    vec = aligned(x)
    blocks = grid(n // 4 if vec else n)
    kernel(_CU, "scale_by_norm_" + suffix(x.dtype))(
        (blocks,), (THREADS,), (x, np.int64(n), np.int32(vec), stats, np.float64(max_norm)))
