"""Numba's CPU thread pool, started so that its workers wake fast without fighting for the cores.

A training step on the CPU is a sequence of Numba parallel kernels (each Conv2d pass, batch norm,
the optimizer step; the Linear layers' products too, gpunet/ops/products.py). Between two kernels
the step's Python glue runs on the calling thread, and Numba's idle workers either spin or sleep:

- sleeping (OpenMP's passive policy), every kernel begins with a futex wake-up of the workers:
  an empty parallel region took 55 µs against 1.6 µs with the workers spinning (2 cores), and a
  batch norm forward of (64, 64, 7, 7) 0.21 ms against 0.11 ms;
- spinning without end (the default policy, a spin count of 300,000), they took the cores from
  the BLAS threads of the matrix products that followed: a dropout_cnn step ran about 3× slower
  (85–95 ms against 25–32 ms) when its products were NumPy's multi-threaded ones.

So when gpunet is imported it starts Numba's pool in one of two ways:

- Numba's OpenMP layer, with ``OMP_WAIT_POLICY=PASSIVE`` and ``GOMP_SPINCOUNT=SPIN_COUNT`` set
  for the moment its libgomp loads and reads them: an idle worker spins ``SPIN_COUNT`` times
  (0.2–0.5 ms on a 2-core AMD EPYC), then sleeps. Every product of a step runs on this pool too
  (gpunet/ops/products.py), so no other pool's threads wait for those cores. This is the way
  when no OpenMP runtime is loaded yet, and when one is (pip's torch imported first, with its
  own copy of libgomp, torch/lib/libgomp.so.1) but Numba's layer loads a runtime of its own
  beside it (another file: ``openmp_runtimes`` tells them apart by inode). With torch imported
  first, an epoch of the MLP with batch norm, dropout and clipping (benchmarks/mlp_epoch.py, 2
  cores) took 1.4 s this way and 2.3 s on the workqueue layer. libgomp loaded once is one runtime
  for the process: PyTorch imported *after* gpunet shares these settings (under the passive
  policy alone an MLP epoch of its measured 4.0 s → 6.3 s). Import torch first, or set
  OMP_WAIT_POLICY yourself, if that matters to you.
- the runtime Numba's layer would use already loaded (its policy then fixed by whoever loaded it
  first): Numba's own ``workqueue`` layer, which never spins. Its pool hands every parallel
  kernel to a worker thread, a wake-up of 20–100 µs even on one thread, so small inputs run
  serial builds of the kernels instead (kernels/common/threads.py). The workqueue layer must not
  be entered from two Python threads at once: Numba stops the process if it is. Set
  NUMBA_THREADING_LAYER to choose another layer.

A NUMBA_THREADING_LAYER, OMP_WAIT_POLICY or GOMP_SPINCOUNT that the user set is left as it is.

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
SPIN_COUNT = 10000  # libgomp's busy-wait iterations before an idle worker sleeps


def openmp_runtimes() -> set:
    """The libgomp files this process has mapped, as (device, inode) pairs (Linux; empty where
    unknown): one per OpenMP runtime, since a copy of libgomp under another name or path is a
    runtime of its own."""
    if not sys.platform.startswith("linux"):
        return set()
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:
        return set()
    found = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def openmp_loaded() -> bool:
    """Whether this process has already mapped libgomp, an OpenMP runtime (Linux; False where
    unknown)."""
    return bool(openmp_runtimes())


def _numba_openmp_is_its_own() -> bool:
    """Load the OpenMP runtime of Numba's omp layer (importing the layer's module loads it, and
    it reads the environment then) and say whether it is a runtime of its own rather than one
    already loaded, whose policy whoever loaded it first has fixed."""
    before = openmp_runtimes()
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:  # no omp layer in this Numba build (or no libgomp)
        return False
    return bool(openmp_runtimes() - before)


def start_numba_threads() -> None:
    """Start Numba's thread pool (once, before any parallel kernel) with workers that spin briefly,
    then sleep; see the module docstring for the two ways and what each means for other libraries."""
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
    settings = {"OMP_WAIT_POLICY": "PASSIVE"}  # what libgomp reads when it loads, then removed
    if "GOMP_SPINCOUNT" not in env:
        settings["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    env.update(settings)
    try:
        if openmp_loaded() and not _numba_openmp_is_its_own():
            numba.config.THREADING_LAYER = "workqueue"
        numba.get_num_threads()  # starts the pool (and loads libgomp, which reads them) now
    except Exception:  # no usable threading layer: Numba will say so at the first parallel kernel
        pass
    finally:
        for name in settings:
            env.pop(name, None)


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
