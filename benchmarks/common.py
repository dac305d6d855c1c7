"""Shared benchmark plumbing: timing (medians), thread counts, records, table and JSON output.

A record is ``{"name", "device", "gpunet_s", "torch_s", "ratio"}`` with ratio = gpunet_s /
torch_s (medians from the same run, same thread count); extra keys (sizes, GB/s) may follow.

On the CPU each library is timed in a fresh process of its own (``isolated``), imported
before the other: Numba and PyTorch share one OpenMP runtime per process, whose wait policy is
fixed by whoever starts it first. gpunet starts it with the passive policy (gpunet/cpu_threads.py),
which slows PyTorch's CPU ops about 1.5x; pip's PyTorch imported first brings its own copy of the
runtime, and Numba's layer loads another (where it would share one already loaded, gpunet moves
its kernels to the slower workqueue layer). In its own process each
library runs as it would for a user who imports it alone.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

FIRST = "GPUNET_BENCH_FIRST"  # which library a process imports first: "gpunet" or "torch"

if os.environ.get(FIRST) == "gpunet":
    import gpunet  # noqa: F401
try:
    import torch  # noqa: F401
except ImportError:
    torch = None


class Worker:
    """A fresh interpreter that imports ``first`` ("gpunet" or "torch") before the other library
    and stays alive between calls: ``call(fn, *args)`` runs ``fn`` there and returns its result
    (``fn`` a module-level function; what it keeps in its module's globals stays for the next call).
    Two workers let a benchmark alternate the libraries block by block, each in its own process,
    so that both see the same drift of the machine's speed."""

    def __init__(self, first: str):
        previous = os.environ.get(FIRST)
        os.environ[FIRST] = first  # inherited by the process, which starts with the first call
        try:
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self.pool.submit(int).result()
        finally:
            if previous is None:
                os.environ.pop(FIRST, None)
            else:
                os.environ[FIRST] = previous

    def call(self, fn, *args):
        return self.pool.submit(fn, *args).result()

    def close(self):
        self.pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def isolated(first: str, fn, *args):
    """``fn(*args)`` run in a fresh interpreter that imports ``first`` ("gpunet" or "torch")
    before the other library; returns its result. ``fn`` must be a module-level function."""
    with Worker(first) as worker:
        return worker.call(fn, *args)


def set_threads(n: int | None = None) -> int:
    """Use the same number of CPU threads for NumPy's BLAS, Numba and PyTorch."""
    n = n or len(os.sched_getaffinity(0))
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except Exception:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except Exception:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:
        pass
    return n


def median_time(fn, repeat: int = 20, warmup: int = 3, sync=None) -> float:
    """Median wall time of ``fn()`` in seconds; ``sync()`` (e.g. a device synchronize) runs
    after each call and inside the timed region."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gpu_time(fn, repeat: int = 50, warmup: int = 5) -> float:
    """Median time of ``fn()`` on the GPU in seconds, measured with CUDA events."""
    import cupy

    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(times)


def torch_gpu_time(fn, repeat: int = 50, warmup: int = 5) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def record(name: str, device: str, gpunet_s: float, torch_s: float, **extra) -> dict:
    """One benchmark row; ``blas_core`` names the OpenBLAS kernels that NumPy (and so gpunet's CPU
    products) ran with in this environment, which every child process inherits."""
    return {"name": name, "device": device, "gpunet_s": gpunet_s, "torch_s": torch_s,
            "ratio": gpunet_s / torch_s if torch_s else float("nan"), **extra, "blas_core": blas_core()}


def blas_core() -> str:
    """The OpenBLAS kernels NumPy uses here (e.g. "SkylakeX"; ``OPENBLAS_CORETYPE`` forces them),
    or "-" when it does not say."""
    from gpunet.kernels.common import blas

    return blas.core() or "-"


def numba_layer() -> str:
    """Numba's threading layer in this process ("omp", "workqueue", "tbb"), or "-" if not started."""
    try:
        import numba

        return numba.threading_layer()
    except Exception:
        return "-"


def print_table(records: list[dict], title: str = "") -> None:
    if title:
        print(title)
    w = max([len(r["name"]) for r in records] + [4])
    print(f"{'name':<{w}}  {'dev':<3}  {'gpunet':>10}  {'torch':>10}  {'ratio':>6}  extra")
    for r in records:
        extra = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in r.items() if k not in ("name", "device", "gpunet_s", "torch_s", "ratio"))
        print(f"{r['name']:<{w}}  {r['device']:<3}  {r['gpunet_s'] * 1e3:>8.3f}ms  {r['torch_s'] * 1e3:>8.3f}ms  "
              f"{r['ratio']:>6.2f}  {extra}")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH", help="write the records as a JSON list")
    p.add_argument("--device", choices=["cpu", "gpu", "both"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every library (default: all)")
    return p


def write_json(records: list[dict], path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(records, f, indent=2)
