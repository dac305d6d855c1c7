"""``Dataset``: inputs ``x``, integer labels ``y``, and where they came from."""
from __future__ import annotations

import numpy as np

from .. import backend


class Dataset:
    """A labelled data set: ``x`` (N, ...) inputs, ``y`` (N,) int64 labels.

    It unpacks as a pair (``x, y = ds``), so it can go wherever an ``(x, y)`` pair goes;
    ``len(ds)`` is N. ``ds[a:b]`` / ``ds[index_array]`` / ``ds.subset(n)`` give a smaller
    Dataset, ``ds[i]`` one ``(x_i, y_i)`` sample, ``ds.to("gpu")`` a copy on another device.
    ``images`` keeps the raw uint8 images (host memory) when the source has them.
    """

    def __init__(self, x, y, source: str = "", images=None, classes=None):
        if len(x) != len(y):
            raise ValueError(f"Dataset(x, y): x has {len(x)} rows but y has {len(y)}")
        self.x = x
        self.y = y
        self.source = source
        self.images = images
        self.classes = tuple(range(10)) if classes is None else tuple(classes)

    def __len__(self) -> int:
        return len(self.x)

    def __iter__(self):
        yield self.x
        yield self.y

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.x[index], self.y[index]
        if isinstance(index, slice):
            host_index = dev_index = index
        else:
            host_index = backend.to_numpy(index)
            if host_index.dtype == bool and host_index.shape != (len(self),):
                raise IndexError(f"Dataset[mask]: mask of shape {host_index.shape}, "
                                 f"expected ({len(self)},)")
            dev_index = backend.to_device(host_index, backend.device_of(self.x))
        images = None if self.images is None else self.images[host_index]
        return Dataset(self.x[dev_index], self.y[dev_index], self.source, images, self.classes)

    def subset(self, n: int) -> "Dataset":
        """The first ``n`` examples (all of them when ``n >= len(self)``)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"Dataset.subset(n): expected a non-negative integer, got {n!r}")
        return self[: int(n)]

    def to(self, device: str | None = None) -> "Dataset":
        """A Dataset with ``x`` and ``y`` on ``device`` ("cpu" / "gpu"; default: active)."""
        return Dataset(backend.to_device(self.x, device), backend.to_device(self.y, device),
                       self.source, self.images, self.classes)

    @property
    def device(self) -> str:
        return backend.device_of(self.x)

    def class_counts(self) -> np.ndarray:
        """Number of examples per class, as a host int64 array of length ``len(classes)``."""
        return np.bincount(backend.to_numpy(self.y), minlength=len(self.classes))

    def __repr__(self) -> str:
        return (f"Dataset(n={len(self)}, x={tuple(self.x.shape)} {self.x.dtype}, "
                f"y={tuple(self.y.shape)} {self.y.dtype}, device={self.device!r}, "
                f"source={self.source!r})")
