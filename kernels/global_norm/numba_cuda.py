"""Global L2 norm and non-finite flag with numba.cuda: a two-stage reduction.

Stage 1: each block sums x² (float64) and ORs the non-finite flag over a grid-stride loop,
reduces in shared memory (tree, power-of-two block) and writes one partial per block. Stage 2:
one block adds the partials in block order and writes ``stats`` (see reference.py). Two launches,
no atomics, deterministic for a given grid. NumPy arrays under the CUDA simulator, CuPy (or any
__cuda_array_interface__) arrays on a GPU.
"""
from __future__ import annotations

import math

import numpy as np
from numba import float64, int32

from ..common.numba_cuda import cuda, device_view as _dev

THREADS = 128  # power of two (tree reduction)
MAX_BLOCKS = 1024


@cuda.jit
def _partials(x, part_sum, part_bad):
    s_sum = cuda.shared.array(THREADS, float64)
    s_bad = cuda.shared.array(THREADS, int32)
    t = cuda.threadIdx.x
    acc = 0.0
    bad = 0
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        d = float64(x[i])
        acc += d * d
        if not math.isfinite(d):
            bad = 1
    s_sum[t] = acc
    s_bad[t] = bad
    cuda.syncthreads()
    half = THREADS // 2
    while half > 0:
        if t < half:
            s_sum[t] += s_sum[t + half]
            s_bad[t] = max(s_bad[t], s_bad[t + half])
        cuda.syncthreads()
        half //= 2
    if t == 0:
        part_sum[cuda.blockIdx.x] = s_sum[0]
        part_bad[cuda.blockIdx.x] = s_bad[0]


@cuda.jit
def _finalize(part_sum, part_bad, stats, count):
    s_sum = cuda.shared.array(THREADS, float64)
    s_bad = cuda.shared.array(THREADS, int32)
    t = cuda.threadIdx.x
    acc = 0.0
    bad = 0
    for k in range(t, part_sum.size, THREADS):
        acc += part_sum[k]
        bad = max(bad, part_bad[k])
    s_sum[t] = acc
    s_bad[t] = bad
    cuda.syncthreads()
    half = THREADS // 2
    while half > 0:
        if t < half:
            s_sum[t] += s_sum[t + half]
            s_bad[t] = max(s_bad[t], s_bad[t + half])
        cuda.syncthreads()
        half //= 2
    if t == 0:
        stats[0] = s_sum[0]
        stats[1] = 1.0 if s_bad[0] != 0 else 0.0
        if count != 0:
            if s_bad[0] != 0:
                stats[3] += 1.0
            else:
                stats[2] += 1.0


@cuda.jit
def _scale(x, stats, max_norm):
    norm = math.sqrt(stats[0])
    if norm > max_norm:  # False for a NaN norm: x is left alone
        s = max_norm / norm
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            x[i] = x[i] * s


def _blocks(n):
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))


def _empty_like_device(x, n, dtype):
    if isinstance(x, np.ndarray):
        return np.empty(n, dtype)
    import cupy

    return cupy.empty(n, dtype)


def grad_stats(x, stats, count=False):
    blocks = _blocks(x.size)
    part_sum = _empty_like_device(x, blocks, np.float64)
    part_bad = _empty_like_device(x, blocks, np.int32)
    _partials[blocks, THREADS](_dev(x), _dev(part_sum), _dev(part_bad))
    _finalize[1, THREADS](_dev(part_sum), _dev(part_bad), _dev(stats), np.int32(1 if count else 0))


def scale_by_norm(x, stats, max_norm):
    _scale[_blocks(x.size), THREADS](_dev(x), _dev(stats), np.float64(max_norm))
