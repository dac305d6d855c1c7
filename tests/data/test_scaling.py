"""Scaling formulas: to_unit, to_symmetric, Standardizer (against float64 NumPy formulas)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gpunet import backend
from gpunet.data import Standardizer, to_symmetric, to_unit

pixels = arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 30)))


@settings(max_examples=50, deadline=None)
@given(pixels)
def test_to_unit_formula(x):
    y = to_unit(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x.astype(np.float64) / 255.0, rtol=1e-6, atol=1e-7)
    assert ((0 <= y) & (y <= 1)).all()


@settings(max_examples=50, deadline=None)
@given(pixels)
def test_to_symmetric_formula(x):
    y = to_symmetric(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x.astype(np.float64) / 127.5 - 1.0, rtol=1e-6, atol=1e-6)
    assert ((-1 <= y) & (y <= 1)).all()


def test_endpoints_and_float_dtypes():
    x = np.array([0, 255], dtype=np.uint8)
    assert to_unit(x).tolist() == [0.0, 1.0]
    assert to_symmetric(x).tolist() == [-1.0, 1.0]
    x64 = np.array([0.0, 127.5, 255.0])
    assert to_unit(x64).dtype == np.float64 and to_symmetric(x64).tolist() == [-1.0, 0.0, 1.0]


def test_standardizer_per_feature(rng):
    x = (rng.standard_normal((500, 6)) * [1, 2, 3, 4, 5, 6] + [10, -3, 0, 7, 1, 2]).astype(np.float32)
    s = Standardizer().fit(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(s.mean, x64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.scale, x64.std(axis=0), rtol=1e-12)
    z = s.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, (x64 - x64.mean(0)) / x64.std(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-4)
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-5, atol=1e-4)


def test_standardizer_global(rng):
    x = rng.uniform(0, 255, size=(300, 4, 5))
    s = Standardizer(per_feature=False)
    z = s.fit_transform(x)
    assert s.mean.shape == () and s.scale.shape == ()
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.scale == pytest.approx(x.std(), rel=1e-12)
    assert z.mean() == pytest.approx(0, abs=1e-10) and z.std() == pytest.approx(1, rel=1e-10)


def test_standardizer_chunked_fit_matches(rng, monkeypatch):
    from gpunet.data import scaling

    x = rng.standard_normal((1000, 3)) * 5 + 100
    monkeypatch.setattr(scaling, "_CHUNK_ROWS", 64)  # many chunks
    s = Standardizer().fit(x)
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.scale, x.std(0), rtol=1e-12)


def test_standardizer_eps_guard(rng):
    x = rng.standard_normal((200, 3))
    x[:, 1] = 0.25  # constant feature, like an MNIST border pixel
    s = Standardizer(eps=1e-8).fit(x)
    assert s.scale[1] == 1.0
    test = np.array([[0.0, 1.25, 0.0]])
    z = s.transform(test)
    assert np.isfinite(z).all() and z[0, 1] == pytest.approx(1.0)  # centred, not blown up


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 5)),
              elements=st.floats(-1e3, 1e3)),
       st.booleans())
def test_standardizer_roundtrip_property(x, per_feature):
    s = Standardizer(per_feature=per_feature).fit(x)
    z = s.transform(x)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=1e-9, atol=1e-6)
    assert np.all(s.scale > 0)


def test_standardizer_state_and_errors(rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(x)
    s = Standardizer().fit(x)
    state = s.state_dict()
    assert set(state) == {"mean", "scale", "per_feature", "eps"}
    assert isinstance(state["mean"], np.ndarray)
    t = Standardizer(per_feature=False).load_state_dict(state)
    np.testing.assert_array_equal(t.transform(x), s.transform(x))
    with pytest.raises(ValueError, match="shape"):
        s.transform(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        Standardizer().fit(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="eps"):
        Standardizer(eps=-1)
    assert s.transform(np.arange(8, dtype=np.uint8).reshape(2, 4)).dtype == np.float32


@pytest.mark.gpu
def test_scaling_on_gpu(rng):
    import cupy

    x = rng.integers(0, 256, size=(100, 7), dtype=np.uint8)
    xd = backend.to_device(x, "gpu")
    assert isinstance(to_unit(xd), cupy.ndarray)
    np.testing.assert_allclose(to_unit(xd).get(), to_unit(x), rtol=1e-6)
    np.testing.assert_allclose(to_symmetric(xd).get(), to_symmetric(x), rtol=1e-6, atol=1e-6)
    f = to_unit(x)
    s_host, s_dev = Standardizer().fit(f), Standardizer().fit(to_unit(xd))
    assert isinstance(s_dev.mean, cupy.ndarray)
    np.testing.assert_allclose(s_dev.mean.get(), s_host.mean, rtol=1e-12)
    np.testing.assert_allclose(s_dev.scale.get(), s_host.scale, rtol=1e-10)
    z = s_host.transform(to_unit(xd))  # host statistics applied to device data
    assert isinstance(z, cupy.ndarray)
    np.testing.assert_allclose(z.get(), s_host.transform(f), rtol=1e-5, atol=1e-5)
