"""The custom kernels against PyTorch, same machine, same run, same thread count (medians).

CPU: Adam with global-norm clipping on 10M parameters (against torch's fused, default and
for-loop Adam), batch norm forward+backward on (1024, 4096), dropout p=0.5 forward+backward on
(1024, 4096). GPU: the same ops at sizes that fill the card, with achieved GB/s.

    python benchmarks/kernels.py [--device cpu|gpu|both] [--threads N] [--json out.json] [--only optim|norm]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_normalization  # noqa: E402
import bench_optimizers  # noqa: E402
from common import parser, print_table, set_threads, write_json  # noqa: E402

import gpunet as gn  # noqa: E402


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--only", choices=["optim", "norm"], default=None)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    modules = [m for key, m in (("optim", bench_optimizers), ("norm", bench_normalization))
               if args.only in (None, key)]
    records = []
    if args.device in ("cpu", "both"):
        for m in modules:
            records += m.cpu_records(threads)
    if args.device in ("gpu", "both"):
        if gn.gpu_available():
            for m in modules:
                records += m.gpu_records()
        else:
            print("no usable GPU: skipping the GPU rows")
    print_table(records, f"kernels vs PyTorch ({threads} CPU threads; medians)")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
