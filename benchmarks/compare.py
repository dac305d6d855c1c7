"""A before/after table of benchmark records: the JSON files two runs of the benchmark scripts wrote
(``--json``), matched by record name, as a Markdown table for docs/cpu-results.md or
docs/gpu-results.md.

    python benchmarks/compare.py --before a/*.json --after b/*.json

For each record: gpunet's time before and after and the ratio to PyTorch (or to the hand loop, for
trainer_overhead; or the overhead in µs, for step_overhead's layer rows) in each run. Numbers are
printed from the files, never typed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(paths) -> dict:
    records = {}
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            records[r["name"]] = r
    return records


def _cells(r: dict) -> tuple[str, str]:
    """(time of gpunet, what it is compared with) for one record."""
    if "overhead_us" in r:
        return f"{r['layer_s'] * 1e6:.1f} µs", f"+{r['overhead_us']:.1f} µs over the kernel"
    mine, other = ("gpunet_s", "torch_s") if "torch_s" in r else ("trainer_s", "hand_s")
    scale, unit = (1e3, "ms") if r[mine] < 1 else (1, "s")
    return f"{r[mine] * scale:.3g} {unit}", f"{r['ratio']:.2f}"


def table(before: dict, after: dict) -> str:
    rows = ["| record | before | ratio before | after | ratio after |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in list(before) + [n for n in after if n not in before]:
        b = _cells(before[name]) if name in before else ("—", "—")
        a = _cells(after[name]) if name in after else ("—", "—")
        rows.append(f"| {name} | {b[0]} | {b[1]} | {a[0]} | {a[1]} |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", nargs="+", required=True, help="JSON record files of the first run")
    p.add_argument("--after", nargs="+", required=True, help="JSON record files of the second run")
    args = p.parse_args(argv)
    print(table(_load(args.before), _load(args.after)))


if __name__ == "__main__":
    main()
