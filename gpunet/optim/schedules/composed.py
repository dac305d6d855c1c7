"""Schedules built on another schedule or on the metric values seen (see __init__.py)."""
from __future__ import annotations

import math

from .base import Schedule, _positive, _unit


class LinearWarmup(Schedule):
    """A linear ramp over the first ``warmup`` epochs/steps, composed with ``schedule``.

    f(t) = f₀ + (1 − f₀) min(t, W)/W.  Default (``shift=False``): η(t) = s(t) f(t), as PyTorch's
    ``ChainedScheduler([LinearLR, s])``. With ``shift=True``: η(t) = s(0) f(t) for t < W and
    s(t − W) after, as ``SequentialLR([LinearLR, s], milestones=[W])`` (the schedule starts
    after the warm-up). Without ``schedule``, η(t) = η₀ f(t).
    """

    def __init__(self, schedule: Schedule | None = None, warmup: int = 5, start_factor: float = 0.1,
                 shift: bool = False, base_lr=None, unit=None):
        super().__init__(base_lr)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"LinearWarmup: schedule must be a gpunet schedule, got {type(schedule).__name__}")
        if isinstance(schedule, (ReduceOnPlateau,)) and shift:
            raise ValueError("LinearWarmup: shift=True does not apply to ReduceOnPlateau")
        self.schedule = schedule
        self.warmup = _positive(warmup, "warmup", "LinearWarmup", integer=True)
        if not (isinstance(start_factor, (int, float)) and 0 <= start_factor <= 1):
            raise ValueError(f"LinearWarmup: start_factor must lie in [0, 1], got {start_factor!r}")
        self.start_factor = float(start_factor)
        self.shift = bool(shift)
        inner_unit = schedule.unit if schedule is not None else "epoch"
        self.unit = _unit(unit or inner_unit, "LinearWarmup")
        if schedule is not None and self.unit != schedule.unit:
            raise ValueError(f"LinearWarmup: unit {self.unit!r} differs from the schedule's {schedule.unit!r}")

    def bind(self, base_lr):
        super().bind(base_lr)
        if self.schedule is not None:
            self.schedule.bind(base_lr)
        return self

    def _needs_base(self):
        return self.schedule is None or self.schedule._needs_base()

    def factor(self, t: int) -> float:
        return self.start_factor + (1 - self.start_factor) * min(t, self.warmup) / self.warmup

    def _lr(self, t, base):
        if self.schedule is None:
            return base * self.factor(t)
        if self.shift:
            return self.schedule(0) * self.factor(t) if t < self.warmup else self.schedule(t - self.warmup)
        return self.schedule(t) * self.factor(t)

    def observe(self, value) -> None:
        """Forward a monitored value to an inner ReduceOnPlateau."""
        if hasattr(self.schedule, "observe"):
            self.schedule.observe(value)

    @property
    def monitor(self):
        return getattr(self.schedule, "monitor", None)

    def state_dict(self):
        s = super().state_dict()
        s["schedule"] = None if self.schedule is None else self.schedule.state_dict()
        return s

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])

    def _config(self):
        return f"{self.schedule!r}, warmup={self.warmup}, start_factor={self.start_factor:g}, shift={self.shift}"


class ReduceOnPlateau(Schedule):
    """η₀ · factorᵏ (floored at min_lr), k = reductions so far; a reduction happens when the
    monitored value has not improved for more than ``patience`` epochs (then ``cooldown`` epochs
    pass before bad epochs count again). Improvement, as PyTorch: with threshold_mode "rel",
    a < best·(1 − threshold) for mode "min"; with "abs", a < best − threshold.

    A pure function of the epoch and the values seen: η(t) replays the first t values given to
    ``observe`` (the LRScheduler callback passes ``logs[monitor]`` at the end of each epoch).
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8, base_lr=None):
        super().__init__(base_lr)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceOnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceOnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not (isinstance(factor, (int, float)) and 0 < factor < 1):
            raise ValueError(f"ReduceOnPlateau: factor must lie in (0, 1), got {factor!r}")
        self.monitor, self.mode, self.factor = monitor, mode, float(factor)
        self.patience = _positive(patience, "patience", "ReduceOnPlateau", integer=True, allow_zero=True)
        self.threshold = _positive(threshold, "threshold", "ReduceOnPlateau", allow_zero=True)
        self.threshold_mode = threshold_mode
        self.cooldown = _positive(cooldown, "cooldown", "ReduceOnPlateau", integer=True, allow_zero=True)
        self.min_lr = _positive(min_lr, "min_lr", "ReduceOnPlateau", allow_zero=True)
        self.eps = float(eps)
        self.history: list[float] = []

    def observe(self, value) -> None:
        """Record the monitored value of the epoch that just ended."""
        self.history.append(float(value))

    def _better(self, a, best):
        if self.mode == "min":
            return a < (best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def _lr(self, t, base):
        lr = base
        best = math.inf if self.mode == "min" else -math.inf
        bad = cooldown = 0
        for a in self.history[:t]:
            if self._better(a, best):
                best, bad = a, 0
            else:
                bad += 1
            if cooldown > 0:
                cooldown -= 1
                bad = 0
            if bad > self.patience:
                new = max(lr * self.factor, self.min_lr)
                if lr - new > self.eps:
                    lr = new
                cooldown, bad = self.cooldown, 0
        return lr

    def state_dict(self):
        s = super().state_dict()
        s["history"] = list(self.history)
        return s

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.history = [float(v) for v in state["history"]]

    def _config(self):
        return f"monitor={self.monitor!r}, mode={self.mode!r}, factor={self.factor:g}, patience={self.patience}"


class OneCycle(Schedule):
    """The one-cycle policy (Smith & Topin), per step, as PyTorch's OneCycleLR.

    η rises from η_max/div_factor to η_max over the first pct_start·T steps, then falls to
    η_max/(div_factor·final_div_factor) at step T − 1 ("cos": a + (b − a)(1 − cos(π p))/2 between
    the phase ends a, b; "linear": a + (b − a)p). ``three_phase``: up, back down to the start
    value, then down to the minimum.
    """

    unit = "step"

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3, anneal: str = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False):
        super().__init__(None)
        self.max_lr = _positive(max_lr, "max_lr", "OneCycle")
        self.total_steps = _positive(total_steps, "total_steps", "OneCycle", integer=True)
        if not (isinstance(pct_start, (int, float)) and 0 < pct_start < 1):
            raise ValueError(f"OneCycle: pct_start must lie in (0, 1), got {pct_start!r}")
        if anneal not in ("cos", "linear"):
            raise ValueError(f"OneCycle: anneal must be 'cos' or 'linear', got {anneal!r}")
        self.pct_start, self.anneal = float(pct_start), anneal
        self.div_factor = _positive(div_factor, "div_factor", "OneCycle")
        self.final_div_factor = _positive(final_div_factor, "final_div_factor", "OneCycle")
        self.three_phase = bool(three_phase)
        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        up_end = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:
            self._phases = [(up_end, initial, self.max_lr),
                            (float(2 * self.pct_start * self.total_steps) - 2, self.max_lr, initial),
                            (self.total_steps - 1.0, initial, low)]
        else:
            self._phases = [(up_end, initial, self.max_lr), (self.total_steps - 1.0, self.max_lr, low)]

    def _needs_base(self):
        return False

    def bind(self, base_lr):
        return self  # η_max defines the cycle; the optimizer's starting rate is not used

    def _lr(self, t, base):
        if t >= self.total_steps:
            t = self.total_steps - 1
        start = 0.0
        for i, (end, a, b) in enumerate(self._phases):
            if t <= end or i == len(self._phases) - 1:
                p = (t - start) / (end - start)
                if self.anneal == "cos":
                    return b + (a - b) / 2 * (math.cos(math.pi * p) + 1)
                return (b - a) * p + a
            start = end
        raise AssertionError("unreachable")

    def _config(self):
        return f"max_lr={self.max_lr:g}, total_steps={self.total_steps}, pct_start={self.pct_start:g}"
