"""Small inputs run Numba's parallel kernels on one thread.

Waking Numba's thread pool costs tens of microseconds (its idle workers sleep: see
gpunet/cpu_threads.py), more than a second thread saves on a small array. Measured on a 2-core
CPU, forward + backward with 1 thread against 2: batch norm (128, 512) 360 against 857 µs and
(1024, 1024) 2.2 against 2.7 ms, but (4096, 1024) 18 against 14 ms; dropout (128, 512) 296
against 470 µs, (512, 512) 847 against 753 µs; Adam + clip 100K parameters 195 against 312 µs,
537K 693 against 672 µs. Each op's tier API is wrapped with the size below which it runs
serially. The thread count is Numba's per-thread setting, restored afterwards.
"""
from __future__ import annotations

import functools
import inspect

import numba


def serial_below(threshold):
    """Decorator: run ``fn(x, ...)`` with one Numba thread when its first argument ``x``
    (passed by position or by name) has fewer than ``threshold`` elements (an int, or a function
    of x giving it, for ops whose layouts differ)."""
    limit = threshold if callable(threshold) else (lambda x: threshold)

    def wrap(fn):
        first = next(iter(inspect.signature(fn).parameters))

        @functools.wraps(fn)
        def run(*args, **kwargs):
            x = args[0] if args else kwargs[first]
            if x.size >= limit(x) or (previous := numba.get_num_threads()) == 1:
                return fn(*args, **kwargs)
            numba.set_num_threads(1)
            try:
                return fn(*args, **kwargs)
            finally:
                numba.set_num_threads(previous)

        return run

    return wrap
