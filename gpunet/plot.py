"""Figures with matplotlib's Agg renderer (no display needed; pyplot is never imported, so a
user's interactive backend is left alone). Each function writes ``path`` (format from its
extension, e.g. .png, .pdf, .svg) and returns it.

- ``plot_history(history, path)``: loss (train, validation, and the penalty when there is one),
  each metric, and the learning rate (log scale), per epoch.
- ``plot_schedule(schedule, n, path)``: a learning-rate schedule over t = 0..n−1.
- ``plot_signal(report, path)``: ``diagnostics.signal_propagation``'s per-layer activation std
  and gradient std (log scale).
- ``plot_diagnostics(diag, path)``: a ``diagnostics.Diagnostics`` callback's records: per-layer
  gradient norm, update-to-weight ratio and activation std over the training steps.
"""
from __future__ import annotations

import math
import os

__all__ = ["plot_history", "plot_schedule", "plot_signal", "plot_diagnostics"]


def _figure(n_panels: int, width: float = 4.2, height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, n_panels, i + 1) for i in range(n_panels)]
    return fig, axes


def _save(fig, path):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _positive(values):
    return all(isinstance(v, (int, float)) and v > 0 for v in values if not math.isnan(v))


def plot_history(history, path, title: str | None = None):
    """Loss, metrics and learning rate per epoch, train and validation side by side."""
    from matplotlib.ticker import MaxNLocator

    keys = list(history)
    if not keys:
        raise ValueError("plot_history: the history is empty (train for at least one epoch)")
    epochs = list(history.epochs)  # 1-based, as the progress lines number them
    restored = getattr(history, "restored_epoch", None)
    skip = {"lr", "time", "loss", "total_loss", "l2_penalty", "l1_penalty", "skipped"}
    metrics = [k for k in keys if not k.startswith("val_") and k not in skip]
    panels = ["loss"] + metrics + (["lr"] if "lr" in keys else [])
    fig, axes = _figure(len(panels))
    for ax, name in zip(axes, panels):
        if name in keys:
            ax.plot(epochs, history[name], "o-", ms=3, label="train")
        if f"val_{name}" in keys:
            ax.plot(epochs, history[f"val_{name}"], "s-", ms=3, label="validation")
        if name == "loss":
            for extra in ("total_loss", "l2_penalty", "l1_penalty"):
                if extra in keys:
                    ax.plot(epochs, history[extra], "--", label=extra.replace("_", " "))
        if name == "lr":
            if _positive(history["lr"]):
                ax.set_yscale("log")
            ax.set_ylabel("learning rate")
        else:
            ax.set_ylabel(name.replace("_", " "))
        if restored is not None:
            ax.axvline(restored, color="0.4", ls=":", lw=1, label=f"restored (epoch {restored})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if name != "lr" or restored is not None:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_schedule(schedule, n: int, path, title: str | None = None):
    """η(t) for t = 0..n−1."""
    values = schedule.values(n)
    fig, (ax,) = _figure(1, width=5.0)
    ax.plot(range(n), values)
    ax.set_xlabel(schedule.unit)
    ax.set_ylabel("learning rate")
    ax.set_title(title or repr(schedule), fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_signal(report, path, title: str | None = None):
    """Per-layer activation std and gradient std of a ``SignalReport`` (log scale)."""
    rows = report.rows
    if not rows:
        raise ValueError("plot_signal: the report has no layers")
    idx = list(range(len(rows)))
    fig, axes = _figure(2, width=5.0)
    for ax, key, label in ((axes[0], "act_std", "activation std"), (axes[1], "grad_std", "gradient std")):
        vals = [r[key] for r in rows]
        ax.plot(idx, vals, "o-", ms=3)
        if _positive(vals):
            ax.set_yscale("log")
        ax.set_xticks(idx)
        ax.set_xticklabels([f"{r['name']} {r['type']}" for r in rows], rotation=90, fontsize=6)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_diagnostics(diag, path, title: str | None = None):
    """Gradient norm, update-to-weight ratio and activation std per layer over the steps."""
    records = getattr(diag, "records", diag)
    if not records:
        raise ValueError("plot_diagnostics: nothing was recorded (train for at least `every` steps)")
    layers = list(records[-1]["layers"])
    fig, axes = _figure(3)
    for ax, key, label in ((axes[0], "grad_norm", "gradient norm"), (axes[1], "update_ratio", "‖ΔW‖/‖W‖"),
                           (axes[2], "act_std", "activation std")):
        drawn = False
        for name in layers:
            pts = [(r["step"], r["layers"][name][key]) for r in records if key in r["layers"].get(name, {})]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{name} {records[-1]['layers'][name]['type']}")
                drawn = True
        if drawn and all(v > 0 for line in ax.get_lines() for v in line.get_ydata() if not math.isnan(v)):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=6)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
