"""What every experiment shares: its command line, the record of the run (date, machine, versions,
command, seeds), and where its numbers and figure go.

A full run writes ``docs/results/<name>.json`` and ``docs/figures/<name>.png``; ``--quick`` (a
smoke test of seconds) writes to ``out/`` instead, so that it never replaces a committed result.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

import gpunet as gn

ROOT = Path(__file__).resolve().parent.parent


def parser(doc: str, seeds=(0, 1, 2)) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke test of seconds (results to out/)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    p.add_argument("--out", type=Path, default=None,
                   help="folder for <name>.json and <name>.png (default: docs/results and docs/figures; "
                        "out/ with --quick)")
    return p


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def metadata(args, **extra) -> dict:
    """The record of this run: when, where, with what, by which command."""
    import numba

    device = gn.backend.active()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{_cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            "device": device, "gpunet": gn.__version__, "numpy": np.__version__, "numba": numba.__version__,
            "python": platform.python_version(),
            "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
            "seeds": list(args.seeds), "quick": bool(args.quick), **extra}


def paths(name: str, args) -> tuple[Path, Path]:
    """(JSON path, figure path) of experiment ``name`` for this run."""
    if args.out is not None:
        return args.out / f"{name}.json", args.out / f"{name}.png"
    if args.quick:
        return ROOT / "out" / f"{name}.json", ROOT / "out" / f"{name}.png"
    return ROOT / "docs" / "results" / f"{name}.json", ROOT / "docs" / "figures" / f"{name}.png"


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    print(f"numbers: {os.path.relpath(path, Path.cwd())}")


def mnist(quick: bool, n_train: int = 2000, n_test: int = 1000, normalize="unit", flatten: bool = True):
    """(train, test) MNIST datasets: the full sets, or for --quick their first n images (the
    bundled sample when the full set is absent); images (N, 784), or (N, 1, 28, 28) with
    ``flatten=False``."""
    train = gn.data.mnist("train", normalize=normalize, flatten=flatten, fallback_to_sample=quick)
    test = gn.data.mnist("test", normalize=normalize, flatten=flatten, fallback_to_sample=quick)
    if quick:
        train, test = train[:n_train], test[:n_test]
    return train, test


def accuracy(model, x, y, batch_size: int = 1000) -> float:
    """The fraction of ``x`` that ``model`` (in evaluation mode) classifies as ``y``."""
    model.eval()
    correct = 0
    for xb, yb in gn.data.batches(x, y, batch_size, shuffle=False):
        correct += int((gn.to_numpy(model(xb)).argmax(axis=1) == gn.to_numpy(yb)).sum())
    return correct / len(x)


def summarize(runs: list, groups: list, means=("final_loss",), sums=("skipped_steps",), std: bool = False) -> list:
    """One row per group (a dict of the keys a run must match, in table order): the group's keys,
    the mean test accuracy over its runs (seeds) with its range (and, with ``std``, its sample
    standard deviation), the mean of each run field in ``means`` and the total of each in ``sums``."""
    rows = []
    for group in groups:
        sel = [r for r in runs if all(r[k] == v for k, v in group.items())]
        acc = [r["test_accuracy"] for r in sel]
        row = {**group, "mean_test_accuracy": float(np.mean(acc)), "min": float(np.min(acc)), "max": float(np.max(acc))}
        if std:
            row["std"] = float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0
        rows.append({**row, **{k: float(np.mean([r[k] for r in sel])) for k in means},
                     **{k: int(sum(r[k] for r in sel)) for k in sums}})
    return rows


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {os.path.relpath(path, Path.cwd())}")


def small_mnist(quick: bool, n_train: int = 1000, n_val: int = 1000):
    """(train, val, test): the first ``n_train`` MNIST training images, the last ``n_val`` as a
    validation set (never trained on), and the whole test set (its first 1,000 for --quick). The
    setting where a large model overfits: early stopping and weight decay are measured on it."""
    train = gn.data.mnist("train", fallback_to_sample=quick)
    test = gn.data.mnist("test", fallback_to_sample=quick)
    if quick:
        n_train, n_val, test = min(n_train, 500), min(n_val, 500), test[:1000]
    return train[:n_train], train[len(train) - n_val:], test


def mlp(widths, init="he_normal", activation=None):
    """A ReLU (or ``activation``) MLP 784 → widths... → 10."""
    layers, n_in = [], 784
    for w in widths:
        layers += [gn.Linear(n_in, w, init=init), (activation or gn.ReLU)()]
        n_in = w
    return gn.Sequential(*layers, gn.Linear(n_in, 10, init=init))


def curves(history, keys=("loss", "accuracy", "val_loss", "val_accuracy")) -> dict:
    """The per-epoch columns of a fit's History that it has, as lists of floats."""
    return {k: list(history[k]) for k in keys if k in history}


def loss_curve(model, opt, x, y, epochs: int, batch_size: int, every: int, grad_norms: list | None = None) -> list:
    """Train ``model`` with ``opt`` on ``x, y`` (shuffled batches, cross-entropy) and return the
    training loss averaged over each window of ``every`` steps (a last, shorter window too: a
    --quick run may have fewer steps than one window). The four-line step, no Trainer: the losses
    stay on the device and are read once per window. ``grad_norms``: a list that receives, per
    window, the mean global gradient norm ‖∇L‖ before clipping (from the optimizer's statistics)."""
    loss_fn = gn.losses.CrossEntropy()
    curve, window, norms = [], [], []

    def read():
        curve.append(float(np.mean(gn.to_numpy(gn.xp.stack(window)))))
        if grad_norms is not None:
            grad_norms.append(float(np.mean(np.sqrt(gn.to_numpy(gn.xp.concatenate(norms))))))
        window.clear()
        norms.clear()

    for _ in range(epochs):
        for xb, yb in gn.data.batches(x, y, batch_size, shuffle=True):
            model.train()
            window.append(loss_fn(model(xb), yb))
            model.backward(loss_fn.backward())
            opt.step()
            if grad_norms is not None:
                norms.append(opt.stats.grad_sq_norm.copy())
            if len(window) == every:
                read()
    if window:
        read()
    return curve
