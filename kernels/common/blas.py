"""The BLAS matrix product that NumPy itself uses, callable from Numba's parallel loops.

NumPy's wheels ship OpenBLAS, whose own thread pool would compete with Numba's for the cores
when the two alternate in one training step (OpenBLAS's idle workers spin for a while after
each product). A kernel that calls ``gemm`` from inside a ``prange`` body instead runs one
single-threaded product per Numba thread, so a whole convolution — im2col, product, epilogue —
is one parallel region on one pool. ``openblas_set_num_threads_local`` (OpenBLAS ≥ 0.3.27)
makes products single-threaded. In NumPy's pthreads build it is not per thread: a value set on
one thread is what every thread sees (measured: set on a second thread, read back on the first).
So ``single_threaded_products()`` sets it to 1 on the calling thread around the parallel region
and restores it after, once; the kernels also set 1 at the top of each task (for builds where
the setting is per thread) and never restore it there — restores racing from several threads
left NumPy's own products on one thread after some convolutions.

``find()`` locates the library among those already loaded in this process (NumPy's bundled
``libscipy_openblas64_``, or a system OpenBLAS with 32-bit or 64-bit integers) and returns a
``Blas`` with ctypes functions that Numba compiles as direct calls, or None when none is usable
(then the callers fall back to ``numpy.matmul``, whose threads are BLAS's own).

    gemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)   (CBLAS)
    C = alpha · op(A) · op(B) + beta · C,   op(A) (m, k), op(B) (k, n), C (m, n), row-major

``gemm_blocks`` makes one product in blocks of C on Numba's pool (gpunet/ops/products.py).
"""
from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

from numba import prange

from .jit import njit

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

# (sgemm, dgemm, set_num_threads_local, integer type) in the order tried
_NAMES = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "openblas_set_num_threads_local", ctypes.c_int64),
    ("cblas_sgemm64_", "cblas_dgemm64_", "openblas_set_num_threads_local", ctypes.c_int64),
    ("cblas_sgemm", "cblas_dgemm", "openblas_set_num_threads_local", ctypes.c_int),
)


@dataclass(frozen=True)
class Blas:
    path: str
    sgemm: object
    dgemm: object
    set_threads_local: object
    int_bits: int


def _signature(real, integer):
    return ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, real,
                            ctypes.c_void_p, integer, ctypes.c_void_p, integer, real, ctypes.c_void_p, integer)


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process whose name mentions BLAS (Linux)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.exists(p))


def _address(lib, name):
    try:
        return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    except AttributeError:
        return None


def find() -> Blas | None:
    """NumPy's OpenBLAS (loaded by ``import numpy``) as a ``Blas``, or None."""
    import numpy  # noqa: F401  (loads its BLAS)

    for path in _loaded_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for s_name, d_name, local_name, integer in _NAMES:
            s, d, local = _address(lib, s_name), _address(lib, d_name), _address(lib, local_name)
            if s and d and local:
                return Blas(path, _signature(ctypes.c_float, integer)(s), _signature(ctypes.c_double, integer)(d),
                            ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(local), 8 * ctypes.sizeof(integer))
    return None


BLAS = find()


def core(lib: Blas | None = BLAS) -> str | None:
    """The kernels OpenBLAS chose for this CPU (e.g. "SkylakeX", "Haswell"), or None if the library
    does not say. ``OPENBLAS_CORETYPE`` in the environment forces the choice; benchmark records
    name it, since AVX2 and AVX-512 kernels differ about 2× in speed on a CPU that has both."""
    if lib is None:
        return None
    handle = ctypes.CDLL(lib.path)
    for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
        fn = getattr(handle, name, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            value = fn()
            return value.decode().strip() if value else None
    return None


class single_threaded_products:
    """``with single_threaded_products(blas):`` BLAS products run on one thread inside, and the
    calling thread's previous setting is restored when the block ends."""

    def __init__(self, lib: Blas):
        self.set_local = lib.set_threads_local

    def __enter__(self):
        self.previous = self.set_local(1)
        return self

    def __exit__(self, *exc):
        self.set_local(self.previous)
        return False


def operand(x):
    """(CBLAS transpose flag, leading dimension) of a 2-D array, or None when it is neither C-
    nor F-contiguous."""
    if x.flags.c_contiguous:
        return NO_TRANS, max(x.shape[1], 1)
    if x.flags.f_contiguous:
        return TRANS, max(x.shape[0], 1)
    return None


@njit(parallel=True, fastmath=False, cache=True)
def gemm_blocks(gemm, set_local, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, count, by_rows, itemsize):
    """C = op(A) · op(B) (addresses a, b, c) in ``count`` blocks of C's rows (``by_rows``) or
    columns, one single-threaded gemm per block, the blocks spread over Numba's threads."""
    for p in prange(count):
        set_local(1)  # the caller restores its setting after the region (blas.single_threaded_products)
        if by_rows:
            i0, i1 = m * p // count, m * (p + 1) // count
            at = i0 * lda if ta == NO_TRANS else i0  # row i0 of op(A)
            gemm(ROW_MAJOR, ta, tb, i1 - i0, n, k, 1.0, a + itemsize * at, lda, b, ldb, 0.0,
                 c + itemsize * i0 * ldc, ldc)
        else:
            j0, j1 = n * p // count, n * (p + 1) // count
            at = j0 if tb == NO_TRANS else j0 * ldb  # column j0 of op(B)
            gemm(ROW_MAJOR, ta, tb, m, j1 - j0, k, 1.0, a, lda, b + itemsize * at, ldb, 0.0, c + itemsize * j0, ldc)
