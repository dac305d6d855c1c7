"""Small inputs run Numba's parallel kernels serially, in the calling thread.

A parallel kernel hands its prange loop to Numba's thread pool even when it runs on one thread,
and that costs more than a small array's pass: a ReLU pass over 2,048 floats took 1.7 µs through
the OpenMP pool on one thread and 0.6 µs as a serial build; under the ``workqueue`` layer (the one
gpunet picks when the OpenMP runtime Numba would use was loaded first, see gpunet/cpu_threads.py) 18–100 µs, a worker's
wake-up. A second thread helps only on large arrays. Measured on a 2-core CPU, forward + backward
with 1 thread against 2: batch norm (128, 512) 360 against 857 µs and (1024, 1024) 2.2 against
2.7 ms, but (4096, 1024) 18 against 14 ms; dropout (128, 512) 296 against 470 µs, (512, 512) 847
against 753 µs; Adam + clip 100K parameters 195 against 312 µs, 537K 693 against 672 µs.

So each parallel kernel of these ops is compiled twice (``parallel_njit``: the parallel build,
and a serial build of the same source whose prange loops run as plain loops, the same bits), and
each op's tier API is wrapped with ``serial_below``, the size below which its kernels run their
serial builds. One Numba thread (``numba.set_num_threads(1)``) runs the serial builds too.

On small inputs the host code between the kernels costs more than the kernels: every call of a
compiled function from Python takes about a microsecond to type its arguments, and every NumPy
allocation, reshape and conversion a few tenths. ``host_njit`` marks a host function written in
the part of Python that Numba compiles: on large inputs it runs as Python and calls the parallel
builds; inside ``serial_below`` a compiled twin of it runs instead, calling the serial builds
directly, so that a whole op is one call from Python.
"""
from __future__ import annotations

import functools
import inspect
import threading
import types

import numba

from .jit import njit


class _Mode(threading.local):
    serial = False  # inside a serial_below call of this thread


_mode = _Mode()


def parallel_njit(**options):
    """Decorator: ``njit(parallel=True, **options)`` (common/jit.py) with a serial twin, compiled from the
    same source without ``parallel`` (its own cache entry), called inside ``serial_below``.
    The builds are ``kernel.parallel`` and ``kernel.serial``."""

    def wrap(fn):
        parallel = njit(parallel=True, **options)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"  # Numba names its cache files by qualname
        serial = njit(**options)(twin)

        @functools.wraps(fn)
        def run(*args):
            return (serial if _mode.serial else parallel)(*args)

        run.parallel, run.serial = parallel, serial
        run.serial_build = lambda: serial  # what host_njit's twins call
        return run

    return wrap


def host_njit(**options):
    """Decorator for a host function that calls ``parallel_njit`` kernels and stays in Numba's
    subset of Python: in parallel mode it runs as written (the kernels' wrappers pick their
    parallel builds); inside ``serial_below`` its twin, compiled with ``njit(**options)`` against
    the kernels' serial builds, runs instead (compiled on first use, when the module is loaded)."""

    def wrap(fn):
        names = {}  # the twin's globals: filled on first use, when every kernel of the module exists
        twin = types.FunctionType(fn.__code__, names, fn.__name__, fn.__defaults__, fn.__closure__)
        twin.__qualname__, twin.__module__ = fn.__qualname__ + "_serial", fn.__module__
        compiled = []

        def serial_build():
            if not compiled:
                names.update(fn.__globals__)
                used = {k: fn.__globals__[k] for k in fn.__code__.co_names if k in fn.__globals__}
                names.update({k: v.serial_build() for k, v in used.items() if hasattr(v, "serial_build")})
                compiled.append(njit(**options)(twin))
            return compiled[0]

        @functools.wraps(fn)
        def run(*args):
            return serial_build()(*args) if _mode.serial else fn(*args)

        run.serial_build = serial_build
        return run

    return wrap


def serial_below(threshold):
    """Decorator: run ``fn(x, ...)`` with the serial builds of its kernels when its first argument
    ``x`` (passed by position or by name) has fewer than ``threshold`` elements (an int, or a
    function of x giving it, for ops whose layouts differ), or when Numba has one thread."""
    limit = threshold if callable(threshold) else (lambda x: threshold)

    def wrap(fn):
        first = next(iter(inspect.signature(fn).parameters))

        @functools.wraps(fn)
        def run(*args, **kwargs):
            x = args[0] if args else kwargs[first]
            if _mode.serial or (x.size >= limit(x) and numba.get_num_threads() > 1):
                return fn(*args, **kwargs)
            _mode.serial = True
            try:
                return fn(*args, **kwargs)
            finally:
                _mode.serial = False

        return run

    return wrap
