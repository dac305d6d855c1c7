"""Tiny models and synthetic data for the training tests (fast on 2 cores)."""
import numpy as np
import pytest

import gpunet as gn


def _blobs(rng, n=240, d=8, k=3, sep=3.0):
    """k Gaussian clusters in d dimensions: float32 x, int64 labels."""
    centers = rng.normal(0, sep, size=(k, d))
    y = rng.integers(0, k, size=n).astype(np.int64)
    x = (centers[y] + rng.normal(0, 1, size=(n, d))).astype(np.float32)
    return x, y


def _mlp(d=8, h=16, k=3, extra=()):
    return gn.Sequential(gn.Linear(d, h), gn.ReLU(), *extra, gn.Linear(h, k))


@pytest.fixture
def blobs():
    return _blobs


@pytest.fixture
def mlp():
    return _mlp


@pytest.fixture
def data(rng):
    x, y = _blobs(rng)
    return (x[:180], y[:180]), (x[180:], y[180:])
