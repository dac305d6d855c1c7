"""Shards: each rank's rows of every global batch.

A global batch of m rows is split over P ranks as ``numpy.array_split`` splits it: rank r takes
rows [s_r, s_r + b_r) with b_r = m div P + [r < m mod P], so the union over ranks is exactly
the batch, in order, and the shards differ by at most one row. Every rank draws the same
permutation (the common seed), so the global batches are the 1-process run's batches.
"""
from __future__ import annotations

from .. import backend
from ..data.batching import _as_generator, check_batch_size


def shard_sizes(m: int, size: int) -> list[int]:
    """Rows b_r of each of ``size`` ranks in a global batch of ``m`` rows."""
    q, extra = divmod(int(m), int(size))
    return [q + (r < extra) for r in range(size)]


def shard_bounds(m: int, rank: int, size: int) -> tuple[int, int]:
    """(start, stop): rank ``rank``'s rows of a global batch of ``m`` rows."""
    q, extra = divmod(int(m), int(size))
    start = rank * q + min(rank, extra)
    return start, start + q + (rank < extra)


def sharded_batches(x, y, batch_size: int, rank: int, size: int, shuffle: bool = True, drop_last: bool = False,
                    rng=None):
    """One epoch of this rank's shards, ``(xb, yb, start, m)``: rows [start, start + len(xb)) of a
    global batch of m rows. ``x`` and ``y`` are on the training device; with ``shuffle`` the
    permutation is drawn now, from ``rng`` (default ``gpunet.backend.rng()``), as ``batches``
    draws it, so it is the same on every rank and in a 1-process run with the same seed."""
    batch_size = check_batch_size(batch_size, "sharded_batches")
    n = len(x)
    perm = _as_generator(rng).permutation(n) if shuffle else None
    if perm is not None and backend.device_of(x) == "gpu":
        perm = backend.to_device(perm, "gpu")
    return _epoch(x, y, batch_size, rank, size, perm, drop_last)


def _epoch(x, y, batch_size, rank, size, perm, drop_last):
    n = len(x)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        m = min(batch_size, n - i)
        a, b = shard_bounds(m, rank, size)
        if perm is None:
            yield x[i + a:i + b], y[i + a:i + b], a, m
        else:
            idx = perm[i + a:i + b]
            yield x[idx], y[idx], a, m


def shard_rows(n: int, rank: int, size: int) -> slice:
    """This rank's contiguous part of ``n`` rows (evaluation): ``numpy.array_split``'s split."""
    a, b = shard_bounds(n, rank, size)
    return slice(a, b)
