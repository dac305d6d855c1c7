"""Batch normalization on the CPU with Numba: streaming passes, float64 accumulation.

Inputs are viewed as (N, C, S): S = 1 for (N, C), S = H·W for (N, C, H, W). Every op is a
reduction into per-task partials, a per-channel finalize that merges them in a fixed order (the
result does not depend on the thread count), and an element-wise pass:

- (N, C, S) statistics: one task per plane x[n, c, :], its mean and M2 = Σ(x − mean)² by two
  float64 passes over the plane (it stays in cache); the planes are merged with Chan's formula —
  stable for any mean, no E[x²] − E[x]². The plane sums are compiled with reassociation
  (``SUMS``), so they vectorize: their order is fixed by the build, not by the thread count;
- (N, C) statistics: each of ``_tasks(N)`` tasks walks its rows in blocks of ``BLOCK_ROWS``,
  the block's mean and M2 by two passes, merged into the task's (mean, M2) the same way;
- y = (x − μ)·(γ·invstd) + β element-wise, x − μ in float64; with ``relu``, max(y, 0) in the
  same pass (a fused BatchNorm → ReLU, the ReLU layer's bits);
- backward: per-task sums Σg and Σg·(x − μ), merged, then dx = a·g − k·(x − μ) − m with
  a = γ·invstd, k = a·dγ·invstd/n, m = a·dβ/n (k = m = 0 with fixed statistics), where g = dy,
  or dy·[y > 0] for a fused ReLU whose output y is passed as ``relu_y``.

Index arithmetic stays on range() variables that start at zero, so Numba emits no negative-index
wraparound and the channel loops vectorize. Same formulas as reference.py.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..common.jit import njit
from ..common.sums import SUMS, mean_m2
from ..common.threads import host_njit, parallel_njit, serial_below

# elements: smaller inputs run the serial builds (common/threads.py); (N, C) rows and (N, C, S) planes
SERIAL_BELOW_ROWS = 1 << 20
SERIAL_BELOW_PLANES = 1 << 16

BLOCK_ROWS = 8
MAX_TASKS = 16


def _serial_limit(x) -> int:
    return SERIAL_BELOW_ROWS if x.shape[2] == 1 else SERIAL_BELOW_PLANES


@njit(inline="always")
def _tasks(n_rows):
    return max(1, min(MAX_TASKS, n_rows))


# ----------------------------------------------------------------------------- helpers
@njit(inline="always")
def _merge(cnt, mean, m2, nb, bmean, bm2):
    """Chan et al.: merge a block (nb, bmean, bm2) into (cnt, mean, m2); returns the new pair."""
    tot = cnt + nb
    delta = bmean - mean
    return mean + delta * (nb / tot), m2 + bm2 + delta * delta * (cnt * nb / tot)


# ----------------------------------------------------------------------------- statistics
@parallel_njit(fastmath=False, cache=True)
def _stats_nc(x, pmean, pm2, pcount):
    N, C = x.shape
    T = pmean.shape[0]
    per = (N + T - 1) // T
    blocks = np.empty((T, 2, C))  # each task's block sums: one allocation, not four per task
    for t in prange(T):
        r0 = t * per
        r1 = min(N, r0 + per)
        mean = pmean[t]
        m2 = pm2[t]
        mean[:] = 0.0
        m2[:] = 0.0
        bs = blocks[t, 0]
        bq = blocks[t, 1]
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
        pcount[t] = cnt


@parallel_njit(fastmath=False, cache=True)
def _stats_ncs(x, pmean, pm2):
    N, C, S = x.shape
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        pmean[n, c], pm2[n, c] = mean_m2(x[n, c])


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
@parallel_njit(fastmath=False, cache=True)
def _normalize(x, mean, a, bias, y, relu, zero):
    """y = (x − mean)·a + bias per channel, then max(y, 0) with ``relu``; x, y of shape (N, C, S)."""
    N, C, S = x.shape
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        xr = x[n, c]
        yr = y[n, c]
        m = mean[c]
        s = a[c]
        b = np.float64(bias[c])
        if relu:
            for q in range(S):
                yr[q] = (xr[q] - m) * s + b  # rounded to y's dtype, then as the ReLU layer:
                v = yr[q]
                yr[q] = zero if v <= 0 else v  # NaN kept, -0 -> 0
        else:
            for q in range(S):
                yr[q] = (xr[q] - m) * s + b


@parallel_njit(fastmath=False, cache=True)
def _normalize_nc(x, mean, a, bias, y, relu, zero):
    N, C = x.shape
    for n in prange(N):
        xr = x[n]
        yr = y[n]
        if relu:
            for c in range(C):
                yr[c] = (xr[c] - mean[c]) * a[c] + bias[c]
                v = yr[c]
                yr[c] = zero if v <= 0 else v
        else:
            for c in range(C):
                yr[c] = (xr[c] - mean[c]) * a[c] + bias[c]


# ----------------------------------------------------------------------------- backward
# With a fused ReLU (``masked``), dy is first multiplied by [y > 0] in dy's dtype, y being the
# ReLU's output, exactly as the ReLU layer's backward would; the product is never stored.
@parallel_njit(fastmath=False, cache=True)
def _bwd_sums_nc(dy, x, mean, mask, masked, psdy, psdx, one, zero):
    N, C = x.shape
    T = psdy.shape[0]
    per = (N + T - 1) // T
    for t in prange(T):
        r0 = t * per
        r1 = min(N, r0 + per)
        sdy = psdy[t]
        sdx = psdx[t]
        sdy[:] = 0.0
        sdx[:] = 0.0
        for r in range(r1 - r0):
            xr = x[r0 + r]
            gr = dy[r0 + r]
            mr = mask[r0 + r]
            for c in range(C):
                g = np.float64(gr[c] * (one if mr[c] > 0 else zero)) if masked else np.float64(gr[c])
                sdy[c] += g
                sdx[c] += g * (xr[c] - mean[c])


@njit(fastmath=SUMS, cache=True)
def _plane_sums(gp, xp, mu):
    """(Σ dy, Σ dy·(x − μ)) over one plane, in float64."""
    sdy = 0.0
    sdx = 0.0
    for q in range(xp.size):
        g = np.float64(gp[q])
        sdy += g
        sdx += g * (xp[q] - mu)
    return sdy, sdx


@njit(fastmath=SUMS, cache=True)
def _plane_sums_masked(gp, mp, xp, mu, one, zero):
    """The same sums of dy·[y > 0] (a fused ReLU's backward: y is the ReLU's output)."""
    sdy = 0.0
    sdx = 0.0
    for q in range(xp.size):
        g = np.float64(gp[q] * (one if mp[q] > 0 else zero))
        sdy += g
        sdx += g * (xp[q] - mu)
    return sdy, sdx


@parallel_njit(fastmath=False, cache=True)
def _bwd_sums_ncs(dy, x, mean, mask, masked, psdy, psdx, one, zero):
    N, C, S = x.shape
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        if masked:
            psdy[n, c], psdx[n, c] = _plane_sums_masked(dy[n, c], mask[n, c], x[n, c], mean[c], one, zero)
        else:
            psdy[n, c], psdx[n, c] = _plane_sums(dy[n, c], x[n, c], mean[c])


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


@parallel_njit(fastmath=False, cache=True)
def _dx(dy, x, mean, a, k, m, dx, mask, masked, one, zero):
    """dx = a·g − k·(x − mean) − m per channel, g = dy (or dy·[y > 0]); arrays of shape (N, C, S)."""
    N, C, S = x.shape
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        xr = x[n, c]
        gr = dy[n, c]
        dr = dx[n, c]
        mr = mask[n, c]
        mu = mean[c]
        ac = a[c]
        kc = k[c]
        mc = m[c]
        if masked:
            for q in range(S):
                g = gr[q] * (one if mr[q] > 0 else zero)
                dr[q] = ac * g - kc * (xr[q] - mu) - mc
        else:
            for q in range(S):
                dr[q] = ac * gr[q] - kc * (xr[q] - mu) - mc


@parallel_njit(fastmath=False, cache=True)
def _dx_nc(dy, x, mean, a, k, m, dx, mask, masked, one, zero):
    N, C = x.shape
    for n in prange(N):
        xr = x[n]
        gr = dy[n]
        dr = dx[n]
        mr = mask[n]
        for c in range(C):
            g = gr[c] * (one if mr[c] > 0 else zero) if masked else gr[c]
            dr[c] = a[c] * g - k[c] * (xr[c] - mean[c]) - m[c]


# ----------------------------------------------------------------------------- host parts
# In Numba's subset of Python (host_njit): on small inputs each op is one compiled call.


@host_njit(cache=True)
def _forward_train(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd, eps, momentum, update,
                   relu, zero):
    N, C, S = x.shape
    cnt = N * S
    if S == 1:
        T = _tasks(N)
        pmean, pm2, pcount = np.empty((T, C)), np.empty((T, C)), np.empty(T)
        _stats_nc(x.reshape(N, C), pmean, pm2, pcount)
    else:
        pmean, pm2, pcount = np.empty((N, C)), np.empty((N, C)), np.full(N, float(S))
        _stats_ncs(x, pmean, pm2)
    a = np.empty(C)
    unbias = cnt / (cnt - 1) if cnt > 1 else math.inf
    _finalize_stats(pmean, pm2, pcount, weight, running_mean, running_var, save_mean, save_invstd, a, eps, momentum,
                    unbias, update)
    _normalize_any(x, save_mean, a, bias, y, relu, zero)


@host_njit(cache=True)
def _normalize_any(x, mean, a, bias, y, relu, zero):
    N, C, S = x.shape
    if S == 1:
        _normalize_nc(x.reshape(N, C), mean, a, bias, y.reshape(N, C), relu, zero)
    else:
        _normalize(x, mean, a, bias, y, relu, zero)


@host_njit(cache=True)
def _backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, batch_stats, mask, masked, one, zero):
    N, C, S = x.shape
    if S == 1:
        T = _tasks(N)
        psdy, psdx = np.empty((T, C)), np.empty((T, C))
        _bwd_sums_nc(dy.reshape(N, C), x.reshape(N, C), save_mean, mask.reshape(N, C), masked, psdy, psdx, one, zero)
    else:
        psdy, psdx = np.empty((N, C)), np.empty((N, C))
        _bwd_sums_ncs(dy, x, save_mean, mask, masked, psdy, psdx, one, zero)
    a, k, m = np.empty(C), np.empty(C), np.empty(C)
    _finalize_bwd(psdy, psdx, weight, save_invstd, dweight, dbias, a, k, m, float(N * S), batch_stats)
    if S == 1:
        _dx_nc(dy.reshape(N, C), x.reshape(N, C), save_mean, a, k, m, dx.reshape(N, C), mask.reshape(N, C), masked,
               one, zero)
    else:
        _dx(dy, x, save_mean, a, k, m, dx, mask, masked, one, zero)


# ----------------------------------------------------------------------------- tier API
@serial_below(_serial_limit)
def forward_train(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd,
                  eps, momentum, update_running, relu=False):
    """Training forward on x of shape (N, C, S); see reference.forward_train."""
    _forward_train(x, weight, bias, running_mean, running_var, y, save_mean, save_invstd, float(eps),
                   float(momentum), bool(update_running), bool(relu), y.dtype.type(0))


@serial_below(_serial_limit)
def forward_eval(x, weight, bias, running_mean, running_var, y, eps, relu=False):
    """Evaluation forward with the running statistics; see reference.forward_eval."""
    mean = running_mean.astype(np.float64)
    a = weight / np.sqrt(running_var.astype(np.float64) + float(eps))
    _normalize_any(x, mean, a, bias, y, bool(relu), y.dtype.type(0))


@serial_below(_serial_limit)
def backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, batch_stats, relu_y=None):
    """dx, dγ, dβ; see reference.backward."""
    masked = relu_y is not None
    _backward(dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, bool(batch_stats),
              relu_y if masked else dy, masked, dy.dtype.type(1), dy.dtype.type(0))
