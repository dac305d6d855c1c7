"""Input scaling: fixed pixel maps and a fitted standardizer. NumPy or CuPy arrays alike."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, to_device, device_of, to_numpy

_CHUNK_ROWS = 8192  # rows per pass when fitting, to bound float64 temporaries


def _float(x):
    """``x`` as a floating array: float arrays keep their dtype, integers become float32."""
    xp = get_array_module(x)
    x = xp.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(xp.float32)


def to_unit(x):
    """Map pixel values in [0, 255] to [0, 1]: ``y = x / 255``.

    Integer input gives float32; float input keeps its dtype."""
    x = _float(x)
    return x * x.dtype.type(1.0 / 255.0)


def to_symmetric(x):
    """Map pixel values in [0, 255] to [-1, 1]: ``y = x / 127.5 - 1``.

    Integer input gives float32; float input keeps its dtype."""
    x = _float(x)
    return x * x.dtype.type(1.0 / 127.5) - x.dtype.type(1.0)


class Standardizer:
    """Zero mean, unit variance, with statistics fitted on the training set.

    ``y = (x - mean) / scale`` where ``scale = std`` if ``std > eps`` else ``1`` (a constant
    feature, such as an MNIST border pixel, is centred but not blown up). ``std`` is the
    population standard deviation (ddof=0), computed in float64.

    ``per_feature=True``: one mean/std per feature (reducing over axis 0, so the statistics
    have shape ``x.shape[1:]``); ``False``: one global mean/std over all elements.
    ``mean`` and ``scale`` are plain float64 arrays on the device of the data fitted on;
    ``state_dict()`` / ``load_state_dict()`` round-trip them as NumPy arrays.
    """

    def __init__(self, per_feature: bool = True, eps: float = 1e-8):
        if not eps >= 0:
            raise ValueError(f"Standardizer(eps): expected eps >= 0, got {eps!r}")
        self.per_feature = bool(per_feature)
        self.eps = float(eps)
        self.mean = None
        self.scale = None

    def fit(self, x) -> "Standardizer":
        xp = get_array_module(x)
        x = xp.asarray(x)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"Standardizer.fit(x): expected a non-empty (N, ...) array, "
                             f"got shape {tuple(x.shape)}")
        axis = 0 if self.per_feature else None
        n = x.shape[0] if self.per_feature else x.size
        total = 0.0
        for i in range(0, x.shape[0], _CHUNK_ROWS):
            total = total + x[i:i + _CHUNK_ROWS].sum(axis=axis, dtype=xp.float64)
        mean = xp.asarray(total / n, dtype=xp.float64)
        sq = 0.0
        for i in range(0, x.shape[0], _CHUNK_ROWS):
            d = x[i:i + _CHUNK_ROWS].astype(xp.float64) - mean
            sq = sq + (d * d).sum(axis=axis)
        std = xp.sqrt(xp.asarray(sq / n, dtype=xp.float64))
        self.mean = mean
        self.scale = xp.where(std > self.eps, std, 1.0)
        return self

    def _stats_for(self, x, name):
        if self.mean is None:
            raise RuntimeError(f"Standardizer.{name}: call fit(x_train) first")
        x = get_array_module(x).asarray(x)
        if self.per_feature and tuple(x.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"Standardizer.{name}(x): fitted on features of shape "
                             f"{tuple(self.mean.shape)}, got x of shape {tuple(x.shape)}")
        x = _float(x)
        dev = device_of(x)
        mean = to_device(self.mean, dev).astype(x.dtype)
        scale = to_device(self.scale, dev).astype(x.dtype)
        return x, mean, scale

    def transform(self, x):
        """``(x - mean) / scale``; float input keeps its dtype, integer input gives float32."""
        x, mean, scale = self._stats_for(x, "transform")
        return (x - mean) / scale

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def inverse_transform(self, y):
        """``y * scale + mean``."""
        y, mean, scale = self._stats_for(y, "inverse_transform")
        return y * scale + mean

    def state_dict(self) -> dict:
        if self.mean is None:
            raise RuntimeError("Standardizer.state_dict: call fit(x_train) first")
        return {"mean": to_numpy(self.mean), "scale": to_numpy(self.scale),
                "per_feature": self.per_feature, "eps": self.eps}

    def load_state_dict(self, state: dict) -> "Standardizer":
        self.per_feature = bool(state["per_feature"])
        self.eps = float(state["eps"])
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.scale = np.asarray(state["scale"], dtype=np.float64)
        return self

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean is None else f"fitted, stats shape {self.mean.shape}"
        return f"Standardizer(per_feature={self.per_feature}, eps={self.eps}, {fitted})"
