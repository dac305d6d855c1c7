"""A before/after table of benchmark records: the JSON files two runs of the benchmark scripts wrote
(``--json``), matched by record name, as a Markdown table for docs/cpu-results.md or
docs/gpu-results.md.

    python benchmarks/compare.py --before a/*.json --after b/*.json
    python benchmarks/compare.py --runs --before b1.json b2.json b3.json --after a1.json a2.json a3.json
    python benchmarks/compare.py --repeats r1.json r2.json r3.json
    python benchmarks/compare.py --run kernels.json mlp_epoch.json cnn_epoch.json
    python benchmarks/compare.py --only step_ --before a.json --after b.json
    python benchmarks/compare.py --links data_parallel-run1.json data_parallel-run2.json

For each record: gpunet's time before and after and the ratio to PyTorch (or to the hand loop, for
trainer_overhead; or the overhead in µs, for step_overhead's layer rows) in each run. Numbers are
printed from the files, never typed. With ``--runs`` each file is one run of the same script (the
before and after runs alternating on one machine), and the table gives each run's time and ratio
and the median ratio. With ``--repeats`` (no before/after) each file is one run of the same code:
gpunet's and PyTorch's times and the ratio, run by run, and the median ratio. With ``--run`` the
files hold the records of one run: both libraries' times and the ratio. Records timed against a
baseline of their own (``baseline_s``, as data_parallel.py writes) get ``--repeats``' table with
that baseline in place of PyTorch; ``--links`` turns them into an estimate of the cost over
several machines (``links_table``). ``--only PREFIX``
keeps the records whose name starts with PREFIX (``step_``: a step's profile). ``render(argv)`` gives
the table as text (experiments/render.py fills the pages' ``<!-- bench: ... -->`` markers with it).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(paths, only: str = "") -> dict:
    records = {}
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            if r["name"].startswith(only):
                records[r["name"]] = r
    return records


def _time(sec: float) -> str:
    scale, unit = (1e3, "ms") if sec < 1 else (1, "s")
    return f"{sec * scale:.3g} {unit}"


def _cells(r: dict) -> tuple[str, str]:
    """(time of gpunet, what it is compared with) for one record."""
    for key in ("phase_s", "step_s"):  # gpunet alone: a piece of a convolution, a layer inside a step
        if key in r:
            return _time(r[key]), "—"
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


def runs_table(befores: list[dict], afters: list[dict]) -> str:
    """Records with a PyTorch ratio, run by run: gpunet's times and ratios before and after. For
    step_overhead's layer rows the time is the layer call's and the "ratio" its overhead over the
    bare kernel calls (µs)."""
    import statistics

    names = [n for n in befores[0] if "torch_s" in befores[0][n] or "overhead_us" in befores[0][n]]
    rows = ["| record | gpunet before | ratio before | gpunet after | ratio after | median ratio before → after |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        b = [r[name] for r in befores if name in r]
        a = [r[name] for r in afters if name in r]
        if "overhead_us" in befores[0][name]:
            times = [" / ".join(f"{r['layer_s'] * 1e6:.1f} µs" for r in rs) for rs in (b, a)]
            ratios = [" / ".join(f"+{r['overhead_us']:.1f} µs" for r in rs) for rs in (b, a)]
            medians = [f"+{statistics.median(r['overhead_us'] for r in rs):.1f} µs" if rs else "—" for rs in (b, a)]
        else:
            times = [" / ".join(_time(r["gpunet_s"]) for r in rs) for rs in (b, a)]
            ratios = [" / ".join(f"{r['ratio']:.2f}" for r in rs) for rs in (b, a)]
            medians = [f"{statistics.median(r['ratio'] for r in rs):.2f}" if rs else "—" for rs in (b, a)]
        rows.append(f"| {name} | {times[0]} | {ratios[0]} | {times[1]} | {ratios[1]} | {medians[0]} → {medians[1]} |")
    return "\n".join(rows)


def repeats_table(runs: list[dict]) -> str:
    """Records with a PyTorch ratio over repeated runs of one version: both libraries' times and
    the ratios, run by run, and the median ratio; then step_overhead's layer rows (the layer call,
    its bare kernel calls and the overhead, run by run, and the median overhead)."""
    import statistics

    names = [n for n in runs[0] if "torch_s" in runs[0][n]]
    rows = ["| record | shape | gpunet | PyTorch | ratio | median ratio |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name in names:
        rs = [r[name] for r in runs if name in r]
        cells = [" / ".join(_time(r[key]) for r in rs) for key in ("gpunet_s", "torch_s")]
        ratios = " / ".join(f"{r['ratio']:.2f}" for r in rs)
        median = statistics.median(r["ratio"] for r in rs)
        rows.append(f"| {name} | {rs[0].get('shape', '')} | {cells[0]} | {cells[1]} | {ratios} | {median:.2f} |")
    over = [n for n in runs[0] if "overhead_us" in runs[0][n]]  # step_overhead's layer-over-kernel records
    if over:
        rows += ["", "| record | layer call | its bare kernels | overhead | median overhead |",
                 "| --- | ---: | ---: | ---: | ---: |"]
    for name in over:
        rs = [r[name] for r in runs if name in r]
        cells = [" / ".join(f"{r[key] * 1e6:.1f} µs" for r in rs) for key in ("layer_s", "kernel_s")]
        extra = " / ".join(f"+{r['overhead_us']:.1f} µs" for r in rs)
        median = statistics.median(r["overhead_us"] for r in rs)
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {extra} | +{median:.1f} µs |")
    return "\n".join(rows)


def baseline_table(runs: list[dict]) -> str:
    """Records timed against a named baseline of their own (``baseline``, ``baseline_s``: one
    process for data_parallel's epoch, MPI's own Allreduce for its all-reduce), run by run: both
    times, the ratio gpunet / baseline and its median (and the median scaling efficiency, where a
    record has one)."""
    import statistics

    names = [n for n in runs[0] if "baseline_s" in runs[0][n]]
    rows = ["| record | gpunet | baseline | baseline's time | ratio | median ratio |",
            "| --- | --- | --- | ---: | ---: | ---: |"]
    for name in names:
        rs = [r[name] for r in runs if name in r]
        cells = [" / ".join(_time(r[key]) for r in rs) for key in ("gpunet_s", "baseline_s")]
        ratios = " / ".join(f"{r['ratio']:.3f}" for r in rs)
        median = f"{statistics.median(r['ratio'] for r in rs):.3f}"
        if "efficiency" in rs[0]:
            median += f" (efficiency {statistics.median(r['efficiency'] for r in rs):.2f})"
        rows.append(f"| {name} | {cells[0]} | {rs[0]['baseline']} | {cells[1]} | {ratios} | {median} |")
    return "\n".join(rows)


def links_table(runs: list[dict], links=(1, 10, 25, 100), ranks=(2, 4, 8)) -> str:
    """What data-parallel training over several machines would spend per step, from data_parallel's
    records (medians over the runs): a ring all-reduce moves 2(P−1)/P of the gradient's bytes
    through each rank's link, t_P = 2(P−1)/P · 4·floats / bandwidth (latency left out); the step's
    compute, split over P machines that each run it as this one does on one process, is t₁/P; with
    no overlap of the two (gpunet reduces after the backward), the efficiency is
    (t₁/P) / (t₁/P + t_P). The all-reduce bandwidth measured between the processes of this one
    machine is given for scale."""
    import statistics

    epoch = [r["mlp_bn_dropout_epoch"] for r in runs]
    floats = epoch[0]["grad_floats"]
    step = statistics.median(r["baseline_s"] / r["steps"] for r in epoch)
    measured = statistics.median(r["allreduce_10M_float32"]["GBps"] for r in runs)
    rows = [f"Gradient per step: {floats:,} float32 = {4 * floats / 1e6:.2f} MB; one process's step here: "
            f"{_time(step)}; the all-reduce between two processes of this machine: {measured:.2f} GB/s.", "",
            "| link | machines P | all-reduce per step | compute per step (t₁/P) | efficiency |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for g in links:
        for P in ranks:
            t = 2 * (P - 1) / P * 4 * floats / (g / 8 * 1e9)
            rows.append(f"| {g} Gb/s | {P} | {_time(t)} | {_time(step / P)} | {step / P / (step / P + t):.2f} |")
    return "\n".join(rows)


def run_table(records: dict) -> str:
    """The records of one run (spread over several files): those with a PyTorch ratio, or, when
    none has one, gpunet's own timings (``phase_s``, ``step_s``: the pieces of a profile)."""
    if any("torch_s" in r for r in records.values()):
        rows = ["| record | gpunet | PyTorch | ratio |", "| --- | ---: | ---: | ---: |"]
        rows += [f"| {n} | {_time(r['gpunet_s'])} | {_time(r['torch_s'])} | {r['ratio']:.2f} |"
                 for n, r in records.items() if "torch_s" in r]
    else:
        rows = ["| record | time |", "| --- | ---: |"]
        rows += [f"| {n} | {_time(r.get('phase_s', r.get('step_s')))} |" for n, r in records.items()
                 if "phase_s" in r or "step_s" in r]
    return "\n".join(rows)


def render(argv) -> str:
    """The table for these command-line arguments, as main prints it."""
    p = argparse.ArgumentParser(prog="compare.py", description=__doc__.splitlines()[0])
    p.add_argument("--before", nargs="+", help="JSON record files of the first run")
    p.add_argument("--after", nargs="+", help="JSON record files of the second run")
    p.add_argument("--runs", action="store_true", help="each file is one run; a row per record, run by run")
    p.add_argument("--repeats", nargs="+", metavar="RUN", help="runs of one version, one JSON file each")
    p.add_argument("--run", nargs="+", metavar="FILE", help="one run, its records in these files")
    p.add_argument("--links", nargs="+", metavar="RUN", help="data_parallel.py's runs: a multi-machine estimate")
    p.add_argument("--only", default="", metavar="PREFIX", help="only the records whose name starts with PREFIX")
    args = p.parse_args(argv)
    only = args.only
    if args.links:
        return links_table([_load([f], only) for f in args.links])
    if args.run:
        if args.before or args.after or args.repeats:
            p.error("--run takes the files of one run alone")
        return run_table(_load(args.run, only))
    if args.repeats:
        if args.before or args.after:
            p.error("--repeats takes the runs of one version; leave out --before and --after")
        runs = [_load([f], only) for f in args.repeats]
        torch = any("torch_s" in r for r in runs[0].values())
        return repeats_table(runs) if torch else baseline_table(runs)
    if not (args.before and args.after):
        p.error("--before and --after are required (or --repeats)")
    if args.runs:
        return runs_table([_load([f], only) for f in args.before], [_load([f], only) for f in args.after])
    return table(_load(args.before, only), _load(args.after, only))


def main(argv=None):
    print(render(argv))


if __name__ == "__main__":
    main()
