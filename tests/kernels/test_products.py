"""gpunet.ops.products.matmul (the Linear layer's products): NumPy's results to rounding, large
products cut into blocks of C (a function of the shapes) on Numba's pool, one OpenBLAS thread
each, and the calling thread's BLAS setting restored after."""
import os

import numba
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


def _operands(rng, m, k, n, dtype, order_a, order_b):
    a = np.asarray(rng.standard_normal((m, k)), dtype=dtype, order=order_a)
    return a, np.asarray(rng.standard_normal((k, n)), dtype=dtype, order=order_b)


@pytest.mark.skipif(blas.BLAS is None, reason="no BLAS callable through ctypes")
@pytest.mark.parametrize("shape", [(128, 784, 512), (784, 128, 512), (10, 64, 1600), (300, 100, 37)])
@pytest.mark.parametrize("orders", ["CC", "FC", "CF", "FF"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_pooled_product_is_its_blocks_products_whatever_the_thread_count(rng, shape, orders, dtype):
    """C's blocks of rows (columns when C is wider) are single-threaded BLAS products of the
    operands' blocks: the same bits on 1 or 2 threads, NumPy's product to rounding."""
    m, k, n = shape
    a, b = _operands(rng, m, k, n, dtype, *orders)
    assert m * n * k >= products.POOLED_FROM
    count = products.pieces(m, n)
    cuts = [(size * p // count, size * (p + 1) // count) for size in (max(m, n),) for p in range(count)]
    with blas.single_threaded_products(blas.BLAS):
        if m >= n:
            want = np.concatenate([a[i0:i1] @ b for i0, i1 in cuts], axis=0)
        else:
            want = np.concatenate([a @ b[:, j0:j1] for j0, j1 in cuts], axis=1)
    threads = numba.get_num_threads()
    try:
        for t in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(t)
            out = np.full((m, n), np.nan, dtype)
            assert products.matmul(a, b, out=out) is out
            np.testing.assert_array_equal(out, want)
    finally:
        numba.set_num_threads(threads)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(want, exact, rtol=0, atol=(1e-4 if dtype == np.float32 else 1e-12) * np.sqrt(k))


def test_products_the_pool_does_not_take_go_to_numpy(rng):
    """Small, integer, strided and mismatched operands: NumPy's own results and errors."""
    a, b = _operands(rng, 4, 3, 2, np.float32, "C", "C")
    np.testing.assert_array_equal(products.matmul(a, b), np.matmul(a, b))
    ai, bi = (rng.integers(0, 9, (300, 300)) for _ in range(2))
    np.testing.assert_array_equal(products.matmul(ai, bi), ai @ bi)
    big, other = _operands(rng, 256, 512, 256, np.float32, "C", "C")
    strided, rows = big[:, ::2], other[::2]  # (256, 256) each, neither C- nor F-contiguous
    np.testing.assert_allclose(products.matmul(strided, rows), strided @ rows, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError):
        products.matmul(big, big)


@pytest.mark.skipif(blas.BLAS is None, reason="no BLAS callable through ctypes")
@pytest.mark.parametrize("shape", [(64, 1600, 10), (128, 784, 512), (4, 3, 2)])
def test_a_product_restores_the_blas_thread_setting(rng, shape):
    m, k, n = shape
    a, b = _operands(rng, m, k, n, np.float32, "C", "C")
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
