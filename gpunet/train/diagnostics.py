"""The ``Diagnostics`` callback: per-layer activation and gradient statistics every N training steps
(the one-off tools it builds on are in gpunet/diagnostics.py)."""
from __future__ import annotations

import math
import warnings

from .. import backend
from ..diagnostics import GradientWarning, hooks
from .callback import Callback

__all__ = ["Diagnostics"]


class Diagnostics(Callback):
    """Record per-layer statistics every ``every`` training steps (only then: hooks are installed
    for that step alone, and its statistics are read back at its end).

    ``records``: a list of {"step" (0-based optimizer step), "epoch" (counted from 1), "layers":
    {name: {"type", "act_mean", "act_std", "grad_norm", "update_ratio"}}} (grad_norm and update_ratio for layers with parameters).
    Warnings (``GradientWarning``, once per layer and kind): vanishing when a layer's gradient
    norm falls below ``vanishing`` × the largest layer gradient norm, exploding when it exceeds
    ``exploding`` or is non-finite.
    """

    def __init__(self, every: int = 100, vanishing: float = 1e-4, exploding: float = 1e3, warn: bool = True):
        if int(every) != every or every < 1:
            raise ValueError(f"Diagnostics: every must be a positive integer, got {every!r}")
        self.every, self.vanishing, self.exploding, self.warn = int(every), float(vanishing), float(exploding), warn
        self.reset()

    def reset(self):
        self.records = []
        self._warned = set()
        self._ctx = None

    def on_batch_begin(self, step, logs=None):
        if step % self.every:
            return
        model = self.trainer.model
        self._acts = {}
        self._before = model.arena.params.copy()
        self._ctx = hooks(model, forward=lambda n, l, xi, yo: self._acts.__setitem__(n, (l, yo.mean(), yo.std())))
        self._ctx.__enter__()

    def on_batch_end(self, step, logs=None):
        if self._ctx is None:
            return
        self._ctx.__exit__(None, None, None)
        self._ctx = None
        arena = self.trainer.model.arena
        xp = backend.get_array_module(arena.params)
        delta = arena.params - self._before
        by_layer = {}
        for e in arena.entries:
            lname = e.name.rsplit(".", 1)[0] if "." in e.name else ""
            sl = slice(e.offset, e.offset + e.size)
            acc = by_layer.setdefault(lname, [0.0, 0.0, 0.0])
            acc[0] = acc[0] + xp.vdot(arena.grads[sl], arena.grads[sl])
            acc[1] = acc[1] + xp.vdot(delta[sl], delta[sl])
            acc[2] = acc[2] + xp.vdot(self._before[sl], self._before[sl])
        layers = {}
        for name, (layer, m, s) in self._acts.items():
            row = {"type": type(layer).__name__, "act_mean": float(m), "act_std": float(s)}
            if name in by_layer:
                g2, d2, w2 = (float(v) for v in by_layer[name])
                row["grad_norm"] = math.sqrt(g2) if g2 >= 0 else math.nan
                row["update_ratio"] = math.sqrt(d2 / w2) if w2 > 0 else math.nan
            layers[name] = row
        self._before = None
        self.records.append({"step": int(step), "epoch": int(self.trainer.current_epoch) + 1, "layers": layers})
        if self.warn:
            self._check(layers, step)

    def _check(self, layers, step):
        norms = {n: r["grad_norm"] for n, r in layers.items() if "grad_norm" in r}
        finite = [v for v in norms.values() if math.isfinite(v)]
        top = max(finite) if finite else 0.0
        for n, v in norms.items():
            kind = None
            if not math.isfinite(v) or v > self.exploding:
                kind, what = "exploding", f"gradient norm {v:.3g} (threshold {self.exploding:g})"
            elif top > 0 and v < self.vanishing * top:
                kind, what = "vanishing", f"gradient norm {v:.3g}, {v / top:.2g} of the largest layer's {top:.3g}"
            if kind and (n, kind) not in self._warned:
                self._warned.add((n, kind))
                warnings.warn(f"{kind} gradient in layer {n!r} ({layers[n]['type']}) at step {step}: {what}",
                              GradientWarning, stacklevel=3)

    def series(self, layer: str, key: str):
        """(steps, values) of one statistic of one layer over the records."""
        pts = [(r["step"], r["layers"][layer][key]) for r in self.records if key in r["layers"].get(layer, {})]
        return [p[0] for p in pts], [p[1] for p in pts]

    def plot(self, path, **kwargs):
        from ..plot import plot_diagnostics

        return plot_diagnostics(self, path, **kwargs)
