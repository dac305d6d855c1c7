"""The real MNIST (from ../shared/data or GPUNET_DATA) and the sample bundled in the package."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

from gpunet.data import mnist, mnist_sample

mnist_mod = importlib.import_module("gpunet.data.mnist")

# from ../shared/data/mnist/README.md
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _real_root():
    """The data root holding the full MNIST, or None when absent."""
    candidates = [Path(__file__).resolve().parents[2].parent / "shared" / "data"]
    if os.environ.get("GPUNET_DATA"):
        candidates.insert(0, Path(os.environ["GPUNET_DATA"]))
    for root in candidates:
        for split in ("train", "test"):
            names = mnist_mod.SPLITS[split][:2]
            if mnist_mod._locate(mnist_mod.search_dirs(root), names) is None:
                break
        else:
            return root
    return None


REAL = _real_root()
needs_real = pytest.mark.skipif(REAL is None, reason="full MNIST not found (../shared/data/mnist "
                                                     "or $GPUNET_DATA/mnist)")


@needs_real
def test_real_test_split():
    ds = mnist("test", root=REAL)  # checksums verified
    assert ds.x.shape == (10000, 784) and ds.x.dtype == np.float32
    assert ds.images.shape == (10000, 28, 28) and ds.images.dtype == np.uint8
    assert ds.y.dtype == np.int64
    assert ds.class_counts().tolist() == TEST_COUNTS
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0


@needs_real
def test_real_train_split():
    ds = mnist("train", root=REAL)
    assert len(ds) == 60000
    assert ds.class_counts().tolist() == TRAIN_COUNTS


@needs_real
def test_real_set_found_through_gpunet_data(monkeypatch):
    monkeypatch.setenv("GPUNET_DATA", str(REAL))
    ds = mnist("test")
    assert len(ds) == 10000 and Path(ds.source).name == "mnist"


@pytest.mark.parametrize("split,n", [("train", 5000), ("test", 1000)])
def test_sample_shapes_and_dtypes(split, n):
    ds = mnist_sample(split)
    assert ds.source == "bundled sample" and len(ds) == n
    assert ds.x.shape == (n, 784) and ds.x.dtype == np.float32
    assert ds.images.shape == (n, 28, 28) and ds.images.dtype == np.uint8
    assert ds.y.shape == (n,) and ds.y.dtype == np.int64
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0 and ds.x.max() > 0.99
    counts = ds.class_counts()
    assert counts.sum() == n and counts.min() >= 0.06 * n  # every digit well represented
    assert ds.images.reshape(n, -1).std(axis=0).max() > 50  # real images, not zeros


def test_sample_file_is_small():
    assert mnist_mod.SAMPLE_PATH.stat().st_size < 3_000_000


@needs_real
@pytest.mark.parametrize("split", ["train", "test"])
def test_sample_is_the_first_real_images(split):
    sample = mnist_sample(split)
    full = mnist(split, root=REAL)
    n = len(sample)
    np.testing.assert_array_equal(sample.images, full.images[:n])
    np.testing.assert_array_equal(sample.y, full.y[:n])
    np.testing.assert_array_equal(sample.x, full.x[:n])


def test_sample_options_and_dataset_api():
    ds = mnist_sample("test", normalize="symmetric", flatten=False)
    assert ds.x.shape == (1000, 1, 28, 28)
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0
    part = ds[10:20]
    assert len(part) == 10 and part.source == "bundled sample"
    np.testing.assert_array_equal(part.images, ds.images[10:20])
    sub = ds.subset(7)
    np.testing.assert_array_equal(sub.y, ds.y[:7])
    picked = ds[np.array([5, 1, 3])]
    np.testing.assert_array_equal(picked.y, ds.y[[5, 1, 3]])
    np.testing.assert_array_equal(picked.images, ds.images[[5, 1, 3]])
    mask = ds.y == 4
    assert (ds[mask].y == 4).all() and len(ds[mask]) == ds.class_counts()[4]
    xi, yi = ds[3]
    assert xi.shape == (1, 28, 28) and yi == ds.y[3]
    on_cpu = ds.to("cpu")
    assert on_cpu.device == "cpu" and on_cpu.x.shape == ds.x.shape
    with pytest.raises(ValueError, match="subset"):
        ds.subset(-1)
    with pytest.raises(IndexError, match="mask"):
        ds[np.ones(3, dtype=bool)]
    assert "bundled sample" in repr(ds)


@pytest.mark.gpu
def test_sample_to_gpu():
    import cupy

    ds = mnist_sample("test").to("gpu")
    assert isinstance(ds.x, cupy.ndarray) and isinstance(ds.y, cupy.ndarray)
    assert ds.device == "gpu"
    picked = ds[np.array([2, 0])]
    assert isinstance(picked.x, cupy.ndarray)
    np.testing.assert_array_equal(picked.y.get(), mnist_sample("test").y[[2, 0]])
