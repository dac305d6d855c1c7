"""The main job's numbers, as the README quotes them: ``examples/train_mnist.py`` run as the README's
first command runs it, once per seed, and what it printed.

Claim: the README's MLP (784-256-BatchNorm-ReLU-Dropout(0.2)-10, Adam with clip_norm 1, early
stopping on the validation loss, η ← 0.8·η per epoch) reaches about 98.4% test accuracy on the
full MNIST within 20 epochs, stopping early, on a 2-core CPU in about 20 s.

How: ``python examples/train_mnist.py --seed S --plot '' --verbose 0`` in a process of its own for
seeds 0, 1, 2 and 3; its early-stopping line, its "N epochs in T s; test loss L" line and its
last line, ``test_accuracy: A``, are recorded as printed. ``--quick``: one epoch, seed 0 only.

    python experiments/main_job.py [--quick] [--seeds 0 1 2 3] [--out DIR]
"""
from __future__ import annotations

import re
import subprocess
import sys
import time

from common import ROOT, metadata, parser, paths, write_json

NAME = "main_job"  # docs/results/main_job.json; rendered into README.md


def run(seed: int, quick: bool) -> dict:
    cmd = [sys.executable, "examples/train_mnist.py", "--seed", str(seed), "--plot", "", "--verbose", "0"]
    if quick:
        cmd += ["--epochs", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    lines = proc.stdout.strip().splitlines()
    stop = next((line for line in lines if line.startswith("EarlyStopping:")), None)
    epochs = re.fullmatch(r"(\d+) epochs in ([\d.]+) s; test loss ([\d.]+)", lines[-2])
    acc = re.fullmatch(r"test_accuracy: ([\d.]+)", lines[-1])
    if not (epochs and acc):
        raise RuntimeError(f"examples/train_mnist.py printed an unexpected ending:\n{proc.stdout[-2000:]}")
    return {"seed": seed, "early_stopping": stop, "summary_line": lines[-2], "last_line": lines[-1],
            "epochs": int(epochs.group(1)), "seconds": float(epochs.group(2)), "test_loss": float(epochs.group(3)),
            "test_accuracy": float(acc.group(1)), "data": lines[0].split("(")[-1].rstrip(")")}


def main(argv=None):
    args = parser(__doc__, seeds=(0, 1, 2, 3)).parse_args(argv)
    seeds = args.seeds[:1] if args.quick else args.seeds
    t0 = time.perf_counter()
    runs = []
    for seed in seeds:
        r = run(seed, args.quick)
        runs.append(r)
        print(f"seed {seed}: {r['early_stopping'] or 'no early stop'}; {r['summary_line']}; {r['last_line']}",
              flush=True)
    json_path, _ = paths(NAME, args)
    args.seeds = seeds
    write_json(json_path, {"name": NAME, "meta": metadata(args, seconds=round(time.perf_counter() - t0, 1)),
                           "runs": runs})


def tables(record: dict) -> dict:
    """The README's sentence about the main job, from the JSON record (rendered by render.py)."""
    meta, (first, *others) = record["meta"], record["runs"]
    cpu, cores = meta["machine"].split(", ")[:2]  # "Intel(R) Xeon(R) Processor", "2 cores"
    machine = f"{cores.split()[0]}-core {cpu.replace('(R)', '').replace(' Processor', '')} CPU"
    said = [f"`{first['early_stopping']}`"] if first["early_stopping"] else []
    said += [f"`{first['summary_line']}`", f"`{first['last_line']}`"]
    text = (f"On {meta['date'][:10]} ({machine}, "
            f"{'no GPU' if meta['device'] == 'cpu' else meta['device']}, seed {first['seed']}), it printed "
            f"{', '.join(said[:-1])} and {said[-1]}")
    if others:
        accs = [f"{r['test_accuracy']:.4f}" for r in others]
        text += (f"; seeds {others[0]['seed']}–{others[-1]['seed']} gave "
                 f"{', '.join(accs[:-1])} and {accs[-1]}")
    return {"headline": text + "."}


if __name__ == "__main__":
    main()
