"""gpunet.ops.products.matmul (the Linear layer's products): NumPy's results, with mid-size
products on one OpenBLAS thread and the calling thread's setting restored after."""
import os

import numpy as np
import pytest

from gpunet.kernels.common import blas
from gpunet.ops import products


@pytest.mark.parametrize("shape", [(4, 3, 2), (64, 1600, 10), (128, 784, 512)])  # small, mid-size, large
def test_matmul_gives_numpys_products_into_out_or_new(shape, rng):
    m, k, n = shape
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    want = np.matmul(a.astype(np.float64), w.T.astype(np.float64))
    got = products.matmul(a, w.T)  # a transposed operand, as Linear's forward passes it
    assert got.shape == (m, n) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    out = np.empty((n, k), np.float32)
    dy = rng.standard_normal((m, n)).astype(np.float32)
    assert products.matmul(dy.T, a, out=out) is out
    np.testing.assert_allclose(out, dy.T.astype(np.float64) @ a, rtol=1e-4, atol=1e-4 * np.sqrt(m))


@pytest.mark.skipif(blas.BLAS is None, reason="no BLAS callable through ctypes")
def test_a_mid_size_product_restores_the_blas_thread_setting(rng):
    a = rng.standard_normal((64, 1600)).astype(np.float32)
    b = rng.standard_normal((1600, 10)).astype(np.float32)
    assert (1 << 18) <= a.size * b.shape[1] < products.THREADED_FROM
    previous = blas.BLAS.set_threads_local(2)
    try:
        products.matmul(a, b)
        assert blas.BLAS.set_threads_local(2) == 2
    finally:
        blas.BLAS.set_threads_local(previous)


@pytest.mark.skipif(blas.BLAS is None, reason="no BLAS callable through ctypes")
def test_blas_core_names_the_kernels_openblas_runs():
    name = blas.core()
    assert isinstance(name, str) and name and name.isprintable()
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if forced:  # OpenBLAS honours a forced choice on a CPU that can run it, and core() says so
        assert name.lower() == forced.lower()
    assert blas.core(None) is None
