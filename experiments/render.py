"""Render the documentation pages' measured tables from the experiments' and benchmarks' JSON records.

A page marks each table it shows as

    <!-- table: <experiment>.<table> -->
    ...the table...
    <!-- /table -->

a run-record line as ``<!-- run: <experiment> -->`` … ``<!-- /run -->``, and a benchmark table as
``<!-- bench: <benchmarks/compare.py's arguments> -->`` … ``<!-- /bench -->`` (e.g. ``--repeats
docs/cpu-runs/a-run1.json docs/cpu-runs/a-run2.json``, paths from the repository root). This script
replaces what lies between the markers with what ``experiments/<experiment>.py``'s
``tables(record)`` makes from ``docs/results/<experiment>.json``, the run line from the record's
``meta`` (date, machine, versions, command, seeds), and the benchmark table with what compare.py
prints for those arguments, in README.md, docs/*.md and docs/guides/*.md. ``--check`` writes nothing and exits 1 when
a committed page differs from its rendering (the tests run it), so no number on a page is typed by
hand.

    python experiments/render.py [--check]
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs"
# a marker's key: <experiment>.<table>, <experiment>, or compare.py's arguments (options and paths)
MARK = re.compile(r"(<!-- (table|run|bench): ([\w./ -]+) -->\n)(.*?)(<!-- /\2 -->)", re.S)


def _record(name: str) -> dict:
    return json.loads((DOCS / "results" / f"{name}.json").read_text())


@functools.cache
def _compare():
    spec = importlib.util.spec_from_file_location("compare", ROOT / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_table(args: str) -> str:
    with contextlib.chdir(ROOT):  # the paths are the repository root's
        return _compare().render(args.split())


def run_line(meta: dict) -> str:
    return (f"Run on {meta['date']} on {meta['machine']} ({meta['device']}), gpunet {meta['gpunet']}, "
            f"NumPy {meta['numpy']}, Numba {meta['numba']}, Python {meta['python']}, seeds "
            f"{', '.join(map(str, meta['seeds']))}, in {meta['seconds']} s: `{meta['command']}`")


def render(text: str) -> str:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))

    def replace(m):
        kind, key = m.group(2), m.group(3)
        if kind == "run":
            body = run_line(_record(key)["meta"])
        elif kind == "bench":
            body = bench_table(key)
        else:
            name, table = key.split(".", 1)
            body = importlib.import_module(name).tables(_record(name))[table]
        return f"{m.group(1)}{body}\n{m.group(5)}"

    return MARK.sub(replace, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a page differs from its rendering")
    args = p.parse_args(argv)
    stale = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted(DOCS.glob("guides/*.md"))]:
        text = page.read_text()
        new = render(text)
        if new != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                page.write_text(new)
    if args.check and stale:
        print("pages that differ from their JSON records (run python experiments/render.py): " + ", ".join(stale))
        return 1
    print(("rendered: " + ", ".join(stale)) if stale else "every page matches its records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
