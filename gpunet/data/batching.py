"""Mini-batches for one epoch, on the device that trains."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend

_DEVICES = {"cpu": "cpu", "numpy": "cpu", "gpu": "gpu", "cupy": "gpu"}


def check_batch_size(batch_size, where: str, name: str = "batch_size") -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size <= 0:
        raise ValueError(f"{where}({name}): expected a positive integer, got {batch_size!r}")
    return int(batch_size)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches per epoch for ``n`` examples: ``n // batch_size`` with ``drop_last``,
    else ``ceil(n / batch_size)``."""
    batch_size = check_batch_size(batch_size, "num_batches")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"num_batches(n): expected a non-negative integer, got {n!r}")
    return n // batch_size if drop_last else -(-n // batch_size)


def batch_sizes(n: int, batch_size: int, drop_last: bool = False) -> set[int]:
    """The distinct sizes of an epoch's batches over ``n`` examples (at most two)."""
    sizes = {batch_size} if n >= batch_size else set()
    if n % batch_size and not drop_last:
        sizes.add(n % batch_size)
    return sizes


def _as_generator(rng):
    if rng is None:
        return backend.rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"batches(rng): expected None, an int seed or a numpy Generator, "
                    f"got {type(rng).__name__}")


def batches(x, y=None, batch_size: int = 32, shuffle: bool = True, drop_last: bool = False,
            rng=None, device: str | None = None):
    """Iterate over one epoch of ``(xb, yb)`` mini-batches along axis 0.

    ``x`` and ``y`` (or a ``Dataset`` / ``(x, y)`` pair as ``x`` with ``y=None``) are moved to
    ``device`` ("cpu" / "gpu"; default: the active backend) once, before the first batch, not per
    batch. With ``shuffle`` the order is a permutation drawn from ``rng`` (default
    ``gpunet.backend.rng()``, so ``gpunet.seed(n)`` makes epochs reproducible; an int seeds a
    fresh generator); the same seed gives the same batches on the CPU and on the GPU (the
    permutation is drawn on the host and indexes device arrays as a device array). Without
    ``shuffle`` the batches are views in order. ``drop_last`` drops a final, short batch.
    Arguments are checked when ``batches`` is called, not at the first batch.
    """
    if y is None:
        try:
            x, y = x
        except (TypeError, ValueError):
            raise TypeError("batches(x, y): y is missing; pass labels, or a Dataset / "
                            "(x, y) pair as x") from None
    batch_size = check_batch_size(batch_size, "batches")
    if device is None:
        device = backend.active()
    elif device not in _DEVICES:
        raise ValueError(f"batches(device): expected 'cpu' or 'gpu', got {device!r}")
    device = _DEVICES.get(device, device)
    if not hasattr(x, "shape") or not hasattr(y, "shape"):
        raise TypeError(f"batches(x, y): expected arrays, got {type(x).__name__} and "
                        f"{type(y).__name__}")
    if len(x) != len(y):
        raise ValueError(f"batches(x, y): x has {len(x)} rows but y has {len(y)}; "
                         "they must be the same length")
    perm = _as_generator(rng).permutation(len(x)) if shuffle else None  # drawn now, eagerly
    if backend.device_of(x) != device:
        x = backend.to_device(x, device)
    if backend.device_of(y) != device:
        y = backend.to_device(y, device)
    if perm is not None and device == "gpu":
        perm = backend.to_device(perm, "gpu")
    return _epoch(x, y, batch_size, perm, drop_last)


def _epoch(x, y, batch_size, perm, drop_last):
    n = len(x)
    stop = n - n % batch_size if drop_last else n
    if perm is None:
        for i in range(0, stop, batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    for i in range(0, stop, batch_size):
        idx = perm[i:i + batch_size]
        yield x[idx], y[idx]
