"""Batch normalization, CUDA C tier: batchnorm.cu through cupy.RawModule, compiled once per process.

Host side of the kernels in batchnorm.cu: picks the kernel for the layout ((N, C) rows or
(N, C, S) planes; 16-byte vector kernels when the sizes and pointers allow, else scalar ones) and
the launch geometry (reduction chunks so that about ``BLOCKS_PER_SM`` blocks per SM are in
flight), allocates the small float64 workspaces (chunk partials, per-channel coefficients) from
CuPy's pool, and launches asynchronously (no host synchronization). Device plumbing and the
``device`` test seam: kernels/common/cupy.py.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..common.cupy import aligned, compiled, sourced, suffix

NC_TX, NC_TY = 32, 8      # (N, C) reductions: 32 channels x 8 row groups, 4 rows in flight each
NCS_THREADS = 256         # (N, C, S) reductions: 8 warps, one plane each at a time
THREADS = 256             # element-wise and per-channel kernels
PLANE_THREADS = 128       # element-wise (N, C, S) kernels: one block per plane
BLOCKS_PER_SM = 8
MAX_GRID_Y = 65535
I32_LIMIT = 2**31         # element-wise kernels index with 32-bit unsigned ints below this size


source = sourced(Path(__file__).with_name("batchnorm.cu"))  # the .cu file, shared headers pasted in
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def _vec_width(dtype) -> int:
    return 16 // np.dtype(dtype).itemsize


def _chunks(dev, n_rows: int, units: int, min_rows: int) -> tuple[int, int]:
    """(chunks, rows per chunk): split n_rows so that units × chunks fills the GPU."""
    want = math.ceil(BLOCKS_PER_SM * dev.sm_count / units)
    chunks = max(1, min(want, math.ceil(n_rows / min_rows), MAX_GRID_Y))
    rows = math.ceil(n_rows / chunks)
    return math.ceil(n_rows / rows), rows


def _reduce(dev, kind: str, arrays, x, extra=()):
    """Launch the partial reduction ``kind`` ("stats" or "bwd_sums") for x's layout; returns
    (chunks, partial arrays of shape (chunks, C))."""
    N, C, S = x.shape
    suf = suffix(x.dtype)
    V = _vec_width(x.dtype)
    nout = 3 if kind == "stats" else 2
    i32, i64 = np.int32, np.int64
    if S == 1:
        vec = C % V == 0 and aligned(dev, *arrays)
        tiles = math.ceil(C / (NC_TX * (V if vec else 1)))
        chunks, rows = _chunks(dev, N, tiles, 4 * NC_TY)
        parts = [dev.xp.empty((chunks, C), dtype=np.float64) for _ in range(nout)]
        name = f"bn_{kind}_nc_vec_{suf}" if vec else f"bn_{kind}_nc_{suf}"
        dev.kernel(name)((tiles, chunks), (NC_TX, NC_TY), (*arrays, *extra, i64(N), i32(C), i64(rows), *parts))
    else:
        chunks, planes = _chunks(dev, N, C, 1)
        vec = S % V == 0 and aligned(dev, *arrays)
        parts = [dev.xp.empty((chunks, C), dtype=np.float64) for _ in range(nout)]
        dev.kernel(f"bn_{kind}_ncs_{suf}")((C, chunks), (NCS_THREADS,),
                                           (*arrays, *extra, i64(N), i32(C), i64(S), i64(planes), i32(vec), *parts))
    return chunks, parts


def _elementwise(dev, name: str, arrays, coefs, x):
    """y = f(x) per channel: the layout's vectorized kernel when the sizes and pointers allow
    16-byte access (rows of (N, C) or planes of (N, C, S) made of whole vectors), else the flat
    kernel (any shape, scalar tail)."""
    N, C, S = x.shape
    V = _vec_width(x.dtype)
    suf = suffix(x.dtype)
    is_aligned = aligned(dev, *arrays)
    i32, i64 = np.int32, np.int64
    if S == 1 and C % V == 0 and C // V >= NC_TX and is_aligned:
        gx = math.ceil(C // V / NC_TX)
        gy = max(1, min(math.ceil(N / NC_TY), MAX_GRID_Y, math.ceil(32 * dev.sm_count / gx)))
        dev.kernel(f"{name}_nc_vec_{suf}")((gx, gy), (NC_TX, NC_TY), (*arrays, *coefs, i64(N), i32(C)))
        return
    if S > 1 and S % V == 0 and S // V >= PLANE_THREADS // 4 and is_aligned:
        grid = max(1, min(N * C, 64 * dev.sm_count))
        dev.kernel(f"{name}_planes_{suf}")((grid,), (PLANE_THREADS,), (*arrays, *coefs, i64(N * C), i32(C), i64(S)))
        return
    total = N * C * S
    idx, width = (np.uint32, "i32") if total < I32_LIMIT else (np.uint64, "i64")
    work = math.ceil(total / V) if is_aligned else total
    grid = max(1, min(32 * dev.sm_count, math.ceil(work / THREADS)))
    dev.kernel(f"{name}_{suf}_{width}")((grid,), (THREADS,), (*arrays, *coefs, idx(total), idx(C), idx(S), i32(is_aligned)))


def _per_channel_grid(C: int) -> int:
    return math.ceil(C / THREADS)


def forward_train(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd,
                  eps, momentum, update_running, relu=False):
    """Training forward on x of shape (N, C, S); see reference.forward_train."""
    dev = _device()
    N, C, S = x.shape
    cnt = N * S
    unbias = cnt / (cnt - 1) if cnt > 1 else math.inf
    chunks, (pn, pmean, pm2) = _reduce(dev, "stats", (x,), x)
    a = dev.xp.empty(C, dtype=np.float64)
    f64 = np.float64
    dev.kernel("bn_finalize_stats_" + suffix(x.dtype))(
        (_per_channel_grid(C),), (THREADS,),
        (pn, pmean, pm2, np.int32(chunks), np.int32(C), weight, running_mean, running_var, save_mean,
         save_invstd, a, f64(eps), f64(momentum), f64(unbias), np.int32(bool(update_running))))
    _elementwise(dev, "bn_normalize", (x, y), (save_mean, a, bias, np.int32(bool(relu))), x)


def forward_eval(x, weight, bias, running_mean, running_var, y, eps, relu=False):
    """Evaluation forward with the running statistics; see reference.forward_eval."""
    dev = _device()
    C = x.shape[1]
    mean = dev.xp.empty(C, dtype=np.float64)
    a = dev.xp.empty(C, dtype=np.float64)
    dev.kernel("bn_eval_coef_" + suffix(x.dtype))(
        (_per_channel_grid(C),), (THREADS,),
        (weight, running_mean, running_var, np.float64(eps), np.int32(C), mean, a))
    _elementwise(dev, "bn_normalize", (x, y), (mean, a, bias, np.int32(bool(relu))), x)


def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, batch_stats, relu_y=None):
    """dx, dγ, dβ; see reference.backward (``relu_y``: a fused ReLU's output, whose mask dy takes)."""
    dev = _device()
    N, C, S = x.shape
    masked = np.int32(relu_y is not None)
    mask = dy if relu_y is None else relu_y
    chunks, (psdy, psdx) = _reduce(dev, "bwd_sums", (dy, x, mask), x, extra=(save_mean, masked))
    a, k, m = (dev.xp.empty(C, dtype=np.float64) for _ in range(3))
    dev.kernel("bn_finalize_bwd_" + suffix(x.dtype))(
        (_per_channel_grid(C),), (THREADS,),
        (psdy, psdx, np.int32(chunks), np.int32(C), weight, save_invstd, dweight, dbias, a, k, m,
         np.float64(N * S), np.int32(bool(batch_stats))))
    _elementwise(dev, "bn_dx", (dy, x, mask, dx), (save_mean, a, k, m, masked), x)
