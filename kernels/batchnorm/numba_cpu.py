"""Batch normalization on the CPU with Numba: streaming passes, float64 accumulation.

Inputs are viewed as (N, C, S): S = 1 for (N, C), S = H·W for (N, C, H, W). Every op is a
reduction over row chunks followed by a per-channel finalize and an element-wise pass, each
pass streaming through memory in storage order (prefetch-friendly, one task per row chunk):

- statistics: each of ``_tasks(N)`` tasks walks its rows in blocks (``BLOCK_ROWS`` rows of an
  (N, C) input, or one (C·S) row of an (N, C, S) input, one channel plane at a time), computes
  the block's mean and M2 = Σ(x − mean)² by two passes over the cached block, and merges them
  into its running (mean, M2) with Chan's formula — stable for any mean, no E[x²] − E[x]²;
- the task partials are merged in a fixed order (the result does not depend on the thread
  count), then y = (x − μ)·(γ·invstd) + β element-wise, x − μ in float64;
- backward: per-task sums Σdy and Σdy·(x − μ), merged, then dx = a·dy − k·(x − μ) − m with
  a = γ·invstd, k = a·dγ·invstd/n, m = a·dβ/n (k = m = 0 with fixed statistics).

Index arithmetic stays on range() variables that start at zero, so Numba emits no negative-index
wraparound and the channel loops vectorize; reductions along a contiguous axis keep ``LANES``
partial sums (no reassociation needed). Same formulas as reference.py.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..common.threads import serial_below

SERIAL_BELOW = 1 << 20  # elements: smaller inputs run on one thread (common/threads.py)

BLOCK_ROWS = 8
LANES = 8
MAX_TASKS = 16


def _tasks(n_rows: int) -> int:
    return max(1, min(MAX_TASKS, n_rows))


# ----------------------------------------------------------------------------- helpers
@njit(inline="always")
def _merge(cnt, mean, m2, nb, bmean, bm2):
    """Chan et al.: merge a block (nb, bmean, bm2) into (cnt, mean, m2); returns the new pair."""
    tot = cnt + nb
    delta = bmean - mean
    return mean + delta * (nb / tot), m2 + bm2 + delta * delta * (cnt * nb / tot)


@njit(inline="always")
def _plane_stats(xp, S, body):
    """(mean, M2) of one contiguous plane of S values, two passes with LANES partial sums."""
    acc = np.zeros(LANES)
    for q in range(0, body, LANES):
        for l in range(LANES):
            acc[l] += xp[q + l]
    for q in range(S - body):
        acc[q] += xp[body + q]
    mean = acc.sum() / S
    acc[:] = 0.0
    for q in range(0, body, LANES):
        for l in range(LANES):
            d = xp[q + l] - mean
            acc[l] += d * d
    for q in range(S - body):
        d = xp[body + q] - mean
        acc[q] += d * d
    return mean, acc.sum()


# ----------------------------------------------------------------------------- statistics
@njit(parallel=True, fastmath=False, cache=True)
def _stats_nc(x, pmean, pm2, pcount):
    N, C = x.shape
    T = pmean.shape[0]
    per = (N + T - 1) // T
    for t in prange(T):
        r0 = t * per
        r1 = min(N, r0 + per)
        mean = np.zeros(C)
        m2 = np.zeros(C)
        bs = np.empty(C)
        bq = np.empty(C)
        cnt = 0.0
        for b0 in range(r0, r1, BLOCK_ROWS):
            nb = min(r1, b0 + BLOCK_ROWS) - b0
            bs[:] = 0.0
            bq[:] = 0.0
            for r in range(nb):
                xr = x[b0 + r]
                for c in range(C):
                    bs[c] += xr[c]
            for c in range(C):
                bs[c] /= nb
            for r in range(nb):
                xr = x[b0 + r]
                for c in range(C):
                    d = xr[c] - bs[c]
                    bq[c] += d * d
            tot = cnt + nb
            f = nb / tot
            g = cnt * nb / tot
            for c in range(C):
                delta = bs[c] - mean[c]
                mean[c] += delta * f
                m2[c] += bq[c] + delta * delta * g
            cnt = tot
        pmean[t, :] = mean
        pm2[t, :] = m2
        pcount[t] = cnt


@njit(parallel=True, fastmath=False, cache=True)
def _stats_ncs(x, pmean, pm2, pcount):
    N, C, S = x.shape
    T = pmean.shape[0]
    per = (N + T - 1) // T
    body = S - S % LANES
    for t in prange(T):
        r0 = t * per
        r1 = min(N, r0 + per)
        mean = np.zeros(C)
        m2 = np.zeros(C)
        cnt = 0.0
        for r in range(r1 - r0):
            for c in range(C):
                bmean, bm2 = _plane_stats(x[r0 + r, c], S, body)
                mean[c], m2[c] = _merge(cnt, mean[c], m2[c], S, bmean, bm2)
            cnt += S
        pmean[t, :] = mean
        pm2[t, :] = m2
        pcount[t] = cnt


@njit(fastmath=False, cache=True)
def _finalize_stats(pmean, pm2, pcount, weight, running_mean, running_var, save_mean, save_invstd,
                    a, eps, momentum, unbias, update):
    T, C = pmean.shape
    for c in range(C):
        cnt = 0.0
        mean = 0.0
        m2 = 0.0
        for t in range(T):
            if pcount[t] > 0:
                mean, m2 = _merge(cnt, mean, m2, pcount[t], pmean[t, c], pm2[t, c])
                cnt += pcount[t]
        var = m2 / cnt
        inv = 1.0 / math.sqrt(var + eps)
        save_mean[c] = mean
        save_invstd[c] = inv
        a[c] = weight[c] * inv
        if update:
            running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
            running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (var * unbias)


# ----------------------------------------------------------------------------- element-wise
@njit(parallel=True, fastmath=False, cache=True)
def _normalize(x, mean, a, bias, y):
    """y = (x − mean)·a + bias per channel; x, y of shape (N, C, S)."""
    N, C, S = x.shape
    for n in prange(N):
        for c in range(C):
            xr = x[n, c]
            yr = y[n, c]
            m = mean[c]
            s = a[c]
            b = np.float64(bias[c])
            for q in range(S):
                yr[q] = (xr[q] - m) * s + b


@njit(parallel=True, fastmath=False, cache=True)
def _normalize_nc(x, mean, a, bias, y):
    N, C = x.shape
    for n in prange(N):
        xr = x[n]
        yr = y[n]
        for c in range(C):
            yr[c] = (xr[c] - mean[c]) * a[c] + bias[c]


# ----------------------------------------------------------------------------- backward
@njit(parallel=True, fastmath=False, cache=True)
def _bwd_sums_nc(dy, x, mean, psdy, psdx):
    N, C = x.shape
    T = psdy.shape[0]
    per = (N + T - 1) // T
    for t in prange(T):
        r0 = t * per
        r1 = min(N, r0 + per)
        sdy = np.zeros(C)
        sdx = np.zeros(C)
        for r in range(r1 - r0):
            xr = x[r0 + r]
            gr = dy[r0 + r]
            for c in range(C):
                g = np.float64(gr[c])
                sdy[c] += g
                sdx[c] += g * (xr[c] - mean[c])
        psdy[t, :] = sdy
        psdx[t, :] = sdx


@njit(parallel=True, fastmath=False, cache=True)
def _bwd_sums_ncs(dy, x, mean, psdy, psdx):
    N, C, S = x.shape
    T = psdy.shape[0]
    per = (N + T - 1) // T
    body = S - S % LANES
    for t in prange(T):
        r0 = t * per
        r1 = min(N, r0 + per)
        sdy = np.zeros(C)
        sdx = np.zeros(C)
        acc = np.empty(LANES)
        acx = np.empty(LANES)
        for r in range(r1 - r0):
            for c in range(C):
                xr = x[r0 + r, c]
                gr = dy[r0 + r, c]
                m = mean[c]
                acc[:] = 0.0
                acx[:] = 0.0
                for q in range(0, body, LANES):
                    for l in range(LANES):
                        g = np.float64(gr[q + l])
                        acc[l] += g
                        acx[l] += g * (xr[q + l] - m)
                for q in range(S - body):
                    g = np.float64(gr[body + q])
                    acc[q] += g
                    acx[q] += g * (xr[body + q] - m)
                sdy[c] += acc.sum()
                sdx[c] += acx.sum()
        psdy[t, :] = sdy
        psdx[t, :] = sdx


@njit(fastmath=False, cache=True)
def _finalize_bwd(psdy, psdx, weight, save_invstd, dweight, dbias, a, k, m, cnt, batch_stats):
    T, C = psdy.shape
    for c in range(C):
        sdy = 0.0
        sdx = 0.0
        for t in range(T):
            sdy += psdy[t, c]
            sdx += psdx[t, c]
        inv = save_invstd[c]
        dgamma = sdx * inv
        dbias[c] = sdy
        dweight[c] = dgamma
        a[c] = weight[c] * inv
        if batch_stats:
            k[c] = a[c] * dgamma * inv / cnt
            m[c] = a[c] * sdy / cnt
        else:
            k[c] = 0.0
            m[c] = 0.0


@njit(parallel=True, fastmath=False, cache=True)
def _dx(dy, x, mean, a, k, m, dx):
    """dx = a·dy − k·(x − mean) − m per channel; arrays of shape (N, C, S)."""
    N, C, S = x.shape
    for n in prange(N):
        for c in range(C):
            xr = x[n, c]
            gr = dy[n, c]
            dr = dx[n, c]
            mu = mean[c]
            ac = a[c]
            kc = k[c]
            mc = m[c]
            for q in range(S):
                dr[q] = ac * gr[q] - kc * (xr[q] - mu) - mc


@njit(parallel=True, fastmath=False, cache=True)
def _dx_nc(dy, x, mean, a, k, m, dx):
    N, C = x.shape
    for n in prange(N):
        xr = x[n]
        gr = dy[n]
        dr = dx[n]
        for c in range(C):
            dr[c] = a[c] * gr[c] - k[c] * (xr[c] - mean[c]) - m[c]


# ----------------------------------------------------------------------------- tier API
@serial_below(SERIAL_BELOW)
def forward_train(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd,
                  eps, momentum, update_running):
    """Training forward on x of shape (N, C, S); see reference.forward_train."""
    N, C, S = x.shape
    cnt = N * S
    T = _tasks(N)
    pmean, pm2, pcount = np.empty((T, C)), np.empty((T, C)), np.empty(T)
    if S == 1:
        _stats_nc(x.reshape(N, C), pmean, pm2, pcount)
    else:
        _stats_ncs(x, pmean, pm2, pcount)
    a = np.empty(C)
    unbias = cnt / (cnt - 1) if cnt > 1 else math.inf
    _finalize_stats(pmean, pm2, pcount, weight, running_mean, running_var, save_mean, save_invstd, a,
                    float(eps), float(momentum), float(unbias), bool(update_running))
    if S == 1:
        _normalize_nc(x.reshape(N, C), save_mean, a, bias, y.reshape(N, C))
    else:
        _normalize(x, save_mean, a, bias, y)


@serial_below(SERIAL_BELOW)
def forward_eval(x, weight, bias, running_mean, running_var, y, eps):
    """Evaluation forward with the running statistics; see reference.forward_eval."""
    N, C, S = x.shape
    mean = running_mean.astype(np.float64)
    a = weight / np.sqrt(running_var.astype(np.float64) + float(eps))
    if S == 1:
        _normalize_nc(x.reshape(N, C), mean, a, bias, y.reshape(N, C))
    else:
        _normalize(x, mean, a, bias, y)


@serial_below(SERIAL_BELOW)
def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, batch_stats):
    """dx, dγ, dβ; see reference.backward."""
    N, C, S = x.shape
    T = _tasks(N)
    psdy, psdx = np.empty((T, C)), np.empty((T, C))
    if S == 1:
        _bwd_sums_nc(dy.reshape(N, C), x.reshape(N, C), save_mean, psdy, psdx)
    else:
        _bwd_sums_ncs(dy, x, save_mean, psdy, psdx)
    a, k, m = np.empty(C), np.empty(C), np.empty(C)
    _finalize_bwd(psdy, psdx, weight, save_invstd, dweight, dbias, a, k, m, float(N * S), bool(batch_stats))
    if S == 1:
        _dx_nc(dy.reshape(N, C), x.reshape(N, C), save_mean, a, k, m, dx.reshape(N, C))
    else:
        _dx(dy, x, save_mean, a, k, m, dx)
