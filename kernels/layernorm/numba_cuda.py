"""Layer normalization with numba.cuda: plain and obviously race-free.

Rows of (M, D): one block per row (grid-stride over rows). Each thread walks the row's values
j = tid, tid + THREADS, ... in float64; the block adds the per-thread partials in shared memory
by a tree. Forward: the mean first, then Σ(x − μ)² (two passes over the row, stable for any
mean), then y. Backward: per row Σg and Σg·x̂ (g = dy·γ), then dx; dγ and dβ by a second kernel,
one thread per column adding its M values in row order. Formulas as in reference.py. Under
NUMBA_ENABLE_CUDASIM=1 the kernels take NumPy arrays; on a GPU, CuPy arrays.
"""
from __future__ import annotations

import math

from numba import float64

from ..common.numba_cuda import block_sum, cuda

THREADS = 128  # a power of two (tree reduction)
MAX_BLOCKS = 4096


@cuda.jit
def _forward(x, weight, bias, y, save_mean, save_invstd, eps):
    M, D = x.shape
    tid = cuda.threadIdx.x
    sh = cuda.shared.array(THREADS, float64)
    for r in range(cuda.blockIdx.x, M, cuda.gridDim.x):
        s = 0.0
        for j in range(tid, D, THREADS):
            s += float64(x[r, j])
        mean = block_sum(sh, tid, s, THREADS) / D
        s = 0.0
        for j in range(tid, D, THREADS):
            d = float64(x[r, j]) - mean
            s += d * d
        inv = 1.0 / math.sqrt(block_sum(sh, tid, s, THREADS) / D + eps)
        for j in range(tid, D, THREADS):
            y[r, j] = weight[j] * ((x[r, j] - mean) * inv) + bias[j]
        if tid == 0:
            save_mean[r] = mean
            save_invstd[r] = inv


@cuda.jit
def _dx(dy, x, weight, save_mean, save_invstd, dx):
    M, D = x.shape
    tid = cuda.threadIdx.x
    sh = cuda.shared.array(THREADS, float64)
    for r in range(cuda.blockIdx.x, M, cuda.gridDim.x):
        mean = save_mean[r]
        inv = save_invstd[r]
        sg = 0.0
        sgx = 0.0
        for j in range(tid, D, THREADS):
            g = float64(dy[r, j]) * weight[j]
            sg += g
            sgx += g * ((x[r, j] - mean) * inv)
        sg = block_sum(sh, tid, sg, THREADS)
        sgx = block_sum(sh, tid, sgx, THREADS)
        c = inv / D
        for j in range(tid, D, THREADS):
            g = float64(dy[r, j]) * weight[j]
            dx[r, j] = c * (D * g - sg - ((x[r, j] - mean) * inv) * sgx)


@cuda.jit
def _dweight_dbias(dy, x, save_mean, save_invstd, dweight, dbias):
    M, D = x.shape
    for j in range(cuda.grid(1), D, cuda.gridsize(1)):
        sw = 0.0
        sb = 0.0
        for r in range(M):
            g = float64(dy[r, j])
            sw += g * ((x[r, j] - save_mean[r]) * save_invstd[r])
            sb += g
        dweight[j] = sw
        dbias[j] = sb


def _blocks(work: int) -> int:
    return max(1, min(MAX_BLOCKS, work))


def forward(x, weight, bias, y, save_mean, save_invstd, eps):
    """y, μ, invstd of x's rows; see reference.forward."""
    _forward[_blocks(x.shape[0]), THREADS](x, weight, bias, y, save_mean, save_invstd, float(eps))


def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias):
    """dx, dγ, dβ; see reference.backward."""
    M, D = x.shape
    _dx[_blocks(M), THREADS](dy, x, weight, save_mean, save_invstd, dx)
    _dweight_dbias[_blocks((D + THREADS - 1) // THREADS), THREADS](dy, x, save_mean, save_invstd, dweight, dbias)
