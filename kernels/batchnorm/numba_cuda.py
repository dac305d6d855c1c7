"""Batch normalization with numba.cuda: plain and obviously race-free.

Reductions: one block per channel (grid-stride over channels). Each thread walks the channel's
n = N·S values j = tid, tid + REDUCE_THREADS, ... (x[j // S, c, j % S]) with a float64 Welford
(statistics) or float64 sums (backward); the block merges the per-thread partials in shared
memory by a tree (Chan's formula for (count, mean, M2)), and thread 0 writes the channel's
results. Element-wise passes: one thread per element in a grid-stride loop. A fused ReLU: max(y, 0)
in the forward's pass, dy·[relu_y > 0] read in both backward passes. Formulas as in reference.py. Under NUMBA_ENABLE_CUDASIM=1 the kernels take NumPy arrays; on a GPU, CuPy arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import float64

from ..common.numba_cuda import cuda

REDUCE_THREADS = 64  # a power of two (tree reduction)
THREADS = 128
MAX_BLOCKS = 4096


@cuda.jit
def _stats(x, weight, running_mean, running_var, save_mean, save_invstd, a, eps, momentum, unbias, update):
    N, C, S = x.shape
    n = N * S
    tid = cuda.threadIdx.x
    sh_n = cuda.shared.array(REDUCE_THREADS, float64)
    sh_mean = cuda.shared.array(REDUCE_THREADS, float64)
    sh_m2 = cuda.shared.array(REDUCE_THREADS, float64)
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        cnt = 0.0
        mean = 0.0
        m2 = 0.0
        for j in range(tid, n, REDUCE_THREADS):
            v = float64(x[j // S, c, j % S])
            cnt += 1.0
            delta = v - mean
            mean += delta / cnt
            m2 += delta * (v - mean)
        sh_n[tid] = cnt
        sh_mean[tid] = mean
        sh_m2[tid] = m2
        cuda.syncthreads()
        half = REDUCE_THREADS // 2
        while half > 0:
            if tid < half:
                na = sh_n[tid]
                nb = sh_n[tid + half]
                tot = na + nb
                if nb > 0.0:
                    delta = sh_mean[tid + half] - sh_mean[tid]
                    sh_mean[tid] += delta * (nb / tot)
                    sh_m2[tid] += sh_m2[tid + half] + delta * delta * (na * nb / tot)
                    sh_n[tid] = tot
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            mu = sh_mean[0]
            var = sh_m2[0] / sh_n[0]
            inv = 1.0 / math.sqrt(var + eps)
            save_mean[c] = mu
            save_invstd[c] = inv
            a[c] = weight[c] * inv
            if update:
                running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mu
                running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (var * unbias)
        cuda.syncthreads()


@cuda.jit
def _eval_coef(weight, running_mean, running_var, eps, mean, a):
    for c in range(cuda.grid(1), weight.size, cuda.gridsize(1)):
        mean[c] = running_mean[c]
        a[c] = weight[c] / math.sqrt(float64(running_var[c]) + eps)


@cuda.jit
def _normalize(x, mean, a, bias, y, relu, zero):
    N, C, S = x.shape
    for i in range(cuda.grid(1), N * C * S, cuda.gridsize(1)):
        n = i // (C * S)
        c = (i // S) % C
        s = i % S
        y[n, c, s] = (x[n, c, s] - mean[c]) * a[c] + bias[c]
        if relu and y[n, c, s] <= 0:  # max(y, 0) after rounding, as the ReLU layer (NaN kept)
            y[n, c, s] = zero


@cuda.jit
def _bwd_sums(dy, x, mask, masked, zero, weight, save_mean, save_invstd, dweight, dbias, a, k, m, batch_stats):
    N, C, S = x.shape
    n = N * S
    tid = cuda.threadIdx.x
    sh_dy = cuda.shared.array(REDUCE_THREADS, float64)
    sh_dx = cuda.shared.array(REDUCE_THREADS, float64)
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        mu = save_mean[c]
        sdy = 0.0
        sdx = 0.0
        for j in range(tid, n, REDUCE_THREADS):
            g = dy[j // S, c, j % S]
            if masked and not mask[j // S, c, j % S] > 0:  # a fused ReLU's mask: dy·0, in dy's dtype
                g = g * zero
            g = float64(g)
            sdy += g
            sdx += g * (x[j // S, c, j % S] - mu)
        sh_dy[tid] = sdy
        sh_dx[tid] = sdx
        cuda.syncthreads()
        half = REDUCE_THREADS // 2
        while half > 0:
            if tid < half:
                sh_dy[tid] += sh_dy[tid + half]
                sh_dx[tid] += sh_dx[tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            inv = save_invstd[c]
            dgamma = sh_dx[0] * inv
            dbias[c] = sh_dy[0]
            dweight[c] = dgamma
            ac = weight[c] * inv
            a[c] = ac
            if batch_stats:
                k[c] = ac * dgamma * inv / n
                m[c] = ac * sh_dy[0] / n
            else:
                k[c] = 0.0
                m[c] = 0.0
        cuda.syncthreads()


@cuda.jit
def _dx(dy, x, mask, masked, zero, mean, a, k, m, dx):
    N, C, S = x.shape
    for i in range(cuda.grid(1), N * C * S, cuda.gridsize(1)):
        n = i // (C * S)
        c = (i // S) % C
        s = i % S
        g = dy[n, c, s]
        if masked and not mask[n, c, s] > 0:
            g = g * zero
        dx[n, c, s] = a[c] * g - k[c] * (x[n, c, s] - mean[c]) - m[c]


def _blocks(work: int) -> int:
    return max(1, min(MAX_BLOCKS, (work + THREADS - 1) // THREADS))


def _channel_blocks(C: int) -> int:
    return max(1, min(MAX_BLOCKS * 4, C))


def forward_train(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd,
                  eps, momentum, update_running, relu=False):
    """Training forward on x of shape (N, C, S); see reference.forward_train."""
    N, C, S = x.shape
    cnt = N * S
    unbias = cnt / (cnt - 1) if cnt > 1 else math.inf
    a = cuda.device_array(C, dtype=np.float64)
    _stats[_channel_blocks(C), REDUCE_THREADS](x, weight, running_mean, running_var, save_mean, save_invstd, a,
                                               float(eps), float(momentum), float(unbias), bool(update_running))
    _normalize[_blocks(x.size), THREADS](x, save_mean, a, bias, y, bool(relu), y.dtype.type(0))


def forward_eval(x, weight, bias, running_mean, running_var, y, eps, relu=False):
    """Evaluation forward with the running statistics; see reference.forward_eval."""
    C = x.shape[1]
    mean = cuda.device_array(C, dtype=np.float64)
    a = cuda.device_array(C, dtype=np.float64)
    _eval_coef[_blocks(C), THREADS](weight, running_mean, running_var, float(eps), mean, a)
    _normalize[_blocks(x.size), THREADS](x, mean, a, bias, y, bool(relu), y.dtype.type(0))


def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, batch_stats, relu_y=None):
    """dx, dγ, dβ; see reference.backward."""
    C = x.shape[1]
    a, k, m = (cuda.device_array(C, dtype=np.float64) for _ in range(3))
    masked = relu_y is not None
    mask = relu_y if masked else dy
    zero = dy.dtype.type(0)
    _bwd_sums[_channel_blocks(C), REDUCE_THREADS](dy, x, mask, masked, zero, weight, save_mean, save_invstd, dweight,
                                                  dbias, a, k, m, bool(batch_stats))
    _dx[_blocks(x.size), THREADS](dy, x, mask, masked, zero, save_mean, a, k, m, dx)
