"""What a Numba parallel kernel costs to start after the pool has been idle (gpunet/cpu_threads.py):
an empty parallel region (two elements), timed right after another one and after idle gaps of
0.1 to 3 ms, in a process started as gpunet starts it (records "pool_region_after_<gap>us").

    python benchmarks/pool_wakeup.py [--json out.json] [--threads N] [--repeat 200]

With Numba's OpenMP layer, idle workers spin ``GOMP_SPINCOUNT`` times (gpunet sets 10,000 unless
you set it), then sleep: a region that starts within the spin finds them awake, a later one
wakes them first. gpunet only: PyTorch has no counterpart to time.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import gpunet as gn  # noqa: E402  (first, as a user who imports it alone: it starts Numba's pool)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import numba_layer, parser, write_json  # noqa: E402  (imports torch, if installed)

GAPS_S = (0.0, 1e-4, 2e-4, 5e-4, 1e-3, 3e-3)


def main(argv=None):
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=200, help="timed regions per gap (median)")
    args = p.parse_args(argv)
    import numba
    import numpy as np
    from numba import njit, prange

    @njit(parallel=True)
    def region(a):
        for i in prange(a.size):
            a[i] += 1.0

    if args.threads:
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    threads = numba.get_num_threads()
    a = np.zeros(2)
    region(a)  # compiled and the pool started
    layer = numba_layer()
    spin = os.environ.get("GOMP_SPINCOUNT", str(getattr(gn.cpu_threads, "SPIN_COUNT", 0))) if layer == "omp" else "-"
    records = []
    for gap in GAPS_S:
        times = []
        for _ in range(args.repeat):
            region(a)
            start = time.perf_counter()
            while time.perf_counter() - start < gap:  # the calling thread busy, the workers idle
                pass
            t0 = time.perf_counter()
            region(a)
            times.append(time.perf_counter() - t0)
        records.append({"name": f"pool_region_after_{gap * 1e6:.0f}us", "device": "cpu", "gap_s": gap,
                        "region_s": statistics.median(times), "threads": threads, "numba_layer": layer,
                        "spin_count": spin})
    print(f"an empty Numba parallel region after the pool was idle ({threads} threads, {layer} layer, "
          f"spin count {spin}), median of {args.repeat}")
    for r in records:
        print(f"  idle {r['gap_s'] * 1e3:5.1f} ms: {r['region_s'] * 1e6:7.1f} us")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
