"""Numba's CPU thread pool, started so that it does not fight NumPy's BLAS for the cores.

A training step alternates Numba parallel kernels with NumPy's multi-threaded BLAS. Under
OpenMP's default wait policy Numba's idle workers spin after each kernel and take the cores that
the BLAS threads of the next matrix product need: on a 2-core CPU a dropout_cnn step ran about
3× slower (85–95 ms against 25–32 ms). So when gpunet is imported it starts Numba's pool in one
of two ways:

- no OpenMP runtime loaded yet: Numba's OpenMP layer, with ``OMP_WAIT_POLICY=PASSIVE`` set for
  the moment libgomp reads it. libgomp is one library per process, so PyTorch imported later
  shares it and its CPU ops run under the passive policy too (an MLP epoch measured 4.0 s →
  6.3 s). Import torch first, or set OMP_WAIT_POLICY yourself, if that matters to you.
- an OpenMP runtime already loaded (torch imported first): its policy is fixed, so Numba uses its
  own ``workqueue`` layer instead, which never spins (whole training steps ran as fast as with the
  passive OpenMP pool; bandwidth-bound kernels on large arrays ran about 20% slower). Its pool
  hands every parallel kernel to a worker thread, a wake-up of 20–100 µs even on one thread, so
  small inputs run serial builds of the kernels instead (kernels/common/threads.py).
  The workqueue layer must not be entered from two Python threads at once: Numba stops the
  process if it is. Set NUMBA_THREADING_LAYER to choose another layer.

A NUMBA_THREADING_LAYER or OMP_WAIT_POLICY that the user set is left as it is.

Several processes on one machine (``mpiexec -n P``) each start both pools at the size of the
whole machine, P·2 pools fighting for the cores: a 2-process MLP step on 2 cores took 28 ms
instead of 3 ms, its matrix products 4.7 ms each. ``limit_threads(n)`` caps both pools of this
process; ``gpunet.distributed.init`` calls it with each rank's share of the cores.
"""
from __future__ import annotations

import os
import sys

# the variables through which a user sets the pools' sizes (then gpunet leaves that pool alone)
NUMBA_VARS = ("NUMBA_NUM_THREADS",)
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def openmp_loaded() -> bool:
    """Whether this process has already mapped libgomp, the OpenMP runtime Numba's layer would
    share (Linux; False where unknown)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


def start_numba_threads_without_spinning() -> None:
    """Start Numba's thread pool (once, before any parallel kernel) so its idle workers do not
    spin; see the module docstring for the two ways and what each means for other libraries."""
    env = os.environ
    if env.get("NUMBA_ENABLE_CUDASIM") == "1" or "NUMBA_THREADING_LAYER" in env or "OMP_WAIT_POLICY" in env:
        return
    try:
        import numba
        from numba.np.ufunc import parallel
    except ImportError:
        return
    if parallel._is_initialized:  # a pool already started is not changed
        return
    if openmp_loaded():
        numba.config.THREADING_LAYER = "workqueue"
    else:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        numba.get_num_threads()  # starts the pool (and loads libgomp) now
    except Exception:  # no usable threading layer: Numba will say so at the first parallel kernel
        pass
    finally:
        env.pop("OMP_WAIT_POLICY", None)


def limit_threads(n: int) -> dict:
    """Run this process's parallel code on at most ``n`` threads: Numba's kernels (called from this
    thread) and NumPy's OpenBLAS products. A pool whose size the user set through its environment
    variable (``NUMBA_NUM_THREADS``; ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or
    ``MKL_NUM_THREADS``) is left alone. Returns the counts set, e.g. ``{"numba": 1, "blas": 1}``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"limit_threads(n): expected an int >= 1, got {n!r}")
    done = {}
    env = os.environ
    if not any(v in env for v in NUMBA_VARS) and env.get("NUMBA_ENABLE_CUDASIM") != "1":
        try:
            import numba

            done["numba"] = min(n, numba.config.NUMBA_NUM_THREADS)
            numba.set_num_threads(done["numba"])
        except ImportError:
            pass
    if not any(v in env for v in BLAS_VARS):
        from .kernels.common import blas

        if blas.BLAS is not None:
            blas.BLAS.set_threads_local(n)
            done["blas"] = n
    return done
