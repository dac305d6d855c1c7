"""Mini-batching: coverage of every index, reproducibility, drop_last, devices, argument checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpunet
from gpunet import backend
from gpunet.data import Dataset, batches, num_batches


def _data(n, rng=None):
    """x rows carry their own index, so a batch tells which examples it holds."""
    x = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)
    y = np.arange(n, dtype=np.int64)
    return x, y


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.integers(1, 64), st.booleans(), st.booleans())
def test_every_index_once_per_epoch(n, bs, shuffle, drop_last):
    x, y = _data(n)
    out = list(batches(x, y, bs, shuffle=shuffle, drop_last=drop_last, rng=n))
    assert len(out) == num_batches(n, bs, drop_last)
    seen = np.concatenate([yb for _, yb in out]) if out else np.zeros(0, np.int64)
    for xb, yb in out:
        np.testing.assert_array_equal(xb[:, 0], yb)  # rows stay paired with labels
        assert len(yb) == bs or (not drop_last and yb is out[-1][1])
    expected_count = n - n % bs if drop_last else n
    assert len(seen) == expected_count
    assert len(np.unique(seen)) == expected_count  # no repeats
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(n))
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(expected_count))


def test_shuffles_and_reproducible_under_seed():
    x, y = _data(1000)
    gpunet.seed(123)
    a = [yb.copy() for _, yb in batches(x, y, 100)]
    b = [yb.copy() for _, yb in batches(x, y, 100)]  # second epoch: a new order
    gpunet.seed(123)
    c = [yb.copy() for _, yb in batches(x, y, 100)]
    assert not np.array_equal(np.concatenate(a), np.arange(1000))
    assert not np.array_equal(np.concatenate(a), np.concatenate(b))
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(c))


def test_permutation_drawn_at_call_time():
    x, y = _data(50)
    gpunet.seed(5)
    first = batches(x, y, 10)
    second = batches(x, y, 10)
    gpunet.seed(5)
    expected_first = backend.rng().permutation(50)
    expected_second = backend.rng().permutation(50)
    np.testing.assert_array_equal(np.concatenate([b for _, b in second]), expected_second)
    np.testing.assert_array_equal(np.concatenate([b for _, b in first]), expected_first)


def test_explicit_rng_leaves_global_stream_alone():
    x, y = _data(64)
    gpunet.seed(9)
    state = backend.rng().bit_generator.state
    g = np.random.default_rng(42)
    got = np.concatenate([b for _, b in batches(x, y, 8, rng=g)])
    assert backend.rng().bit_generator.state == state
    np.testing.assert_array_equal(got, np.random.default_rng(42).permutation(64))
    np.testing.assert_array_equal(
        np.concatenate([b for _, b in batches(x, y, 8, rng=42)]), got)


def test_drop_last():
    x, y = _data(10)
    sizes = [len(yb) for _, yb in batches(x, y, 4, drop_last=True)]
    assert sizes == [4, 4]
    sizes = [len(yb) for _, yb in batches(x, y, 4, drop_last=False)]
    assert sizes == [4, 4, 2]
    assert list(batches(x, y, 11, drop_last=True)) == []


def test_num_batches():
    assert num_batches(10, 4) == 3 and num_batches(10, 4, drop_last=True) == 2
    assert num_batches(12, 4) == 3 and num_batches(12, 4, True) == 3
    assert num_batches(0, 4) == 0 and num_batches(3, 5) == 1 and num_batches(3, 5, True) == 0
    with pytest.raises(ValueError, match="n"):
        num_batches(-1, 4)


def test_unshuffled_batches_are_views():
    x, y = _data(20)
    xb, yb = next(batches(x, y, 8, shuffle=False))
    assert np.shares_memory(xb, x) and np.shares_memory(yb, y)


def test_dataset_and_pair_as_x():
    x, y = _data(30)
    ds = Dataset(x, y, "test")
    got = np.concatenate([b for _, b in batches(ds, batch_size=7, shuffle=False)])
    np.testing.assert_array_equal(got, y)
    got = np.concatenate([b for _, b in batches((x, y), batch_size=7, shuffle=False)])
    np.testing.assert_array_equal(got, y)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "8", True, None])
def test_batch_size_checked(bad):
    x, y = _data(10)
    with pytest.raises(ValueError, match="batch_size"):
        batches(x, y, bad)  # raised at the call, not at the first batch
    with pytest.raises(ValueError, match="batch_size"):
        num_batches(10, bad)


def test_length_mismatch_and_other_errors():
    x, y = _data(10)
    with pytest.raises(ValueError, match="x has 10 rows but y has 9"):
        batches(x, y[:9], 4)
    with pytest.raises(ValueError, match="device"):
        batches(x, y, 4, device="tpu")
    with pytest.raises(TypeError, match="rng"):
        batches(x, y, 4, rng="seed")
    with pytest.raises(TypeError, match="y is missing"):
        batches(x, batch_size=4)


def test_host_batches_on_cpu_device():
    x, y = _data(10)
    for xb, yb in batches(x, y, 3, device="cpu"):
        assert isinstance(xb, np.ndarray) and isinstance(yb, np.ndarray)


@pytest.mark.gpu
def test_gpu_batches_match_cpu_and_move_once(monkeypatch):
    import cupy

    x, y = _data(257)
    gpunet.seed(3)
    host = [(xb.copy(), yb.copy()) for xb, yb in batches(x, y, 32, device="cpu")]
    moves = []
    real = backend.to_device
    monkeypatch.setattr(backend, "to_device", lambda a, *k, **kw: moves.append(1) or real(a, *k, **kw))
    gpunet.seed(3)
    dev = list(batches(x, y, 32, device="gpu"))
    assert len(moves) == 3  # x, y and the permutation, once each, not per batch
    assert len(dev) == len(host)
    for (hx, hy), (dx, dy) in zip(host, dev):
        assert isinstance(dx, cupy.ndarray) and isinstance(dy, cupy.ndarray)
        np.testing.assert_array_equal(dx.get(), hx)
        np.testing.assert_array_equal(dy.get(), hy)


@pytest.mark.gpu
def test_device_arrays_shuffled_on_device():
    import cupy

    x, y = _data(100)
    xd, yd = cupy.asarray(x), cupy.asarray(y)
    gpunet.use("gpu")
    seen = cupy.concatenate([yb for _, yb in batches(xd, yd, 16)])
    assert isinstance(seen, cupy.ndarray)
    assert sorted(seen.get().tolist()) == list(range(100))
    assert not np.array_equal(seen.get(), np.arange(100))
    # device arrays can also be batched onto the host
    xb, yb = next(batches(xd, yd, 16, device="cpu", shuffle=False))
    assert isinstance(xb, np.ndarray) and yb.tolist() == list(range(16))
