"""Learning-rate schedules: each one a pure function of the epoch (or step) number.

A schedule maps t = 0, 1, 2, ... (epochs, or optimizer steps when ``unit == "step"``) to a
learning rate; t is the 0-based index, as in PyTorch: t = 0 is the first epoch, which the progress
line calls "epoch 1", so ``Step(step_size=10)`` first decays the rate at epoch 11 as printed. Nothing is stepped or mutated, so ``schedule(t)`` can be evaluated anywhere —
for a plot (``schedule.values(n)``, ``schedule.plot(path, n)``) or after resuming from a
checkpoint (``state_dict`` holds the base rate; ``ReduceOnPlateau`` also holds the metric values
it has seen, and replays them). Attach one with ``gpunet.callbacks.LRScheduler(schedule)``; the
base rate η₀ defaults to the optimizer's learning rate when the training starts.

| schedule | η(t) |
| --- | --- |
| Lambda(f) | η₀ f(t)  (PyTorch's LambdaLR; ``LRScheduler(f)`` with a plain function makes one) |
| Exponential(γ) | η₀ γᵗ  (the classic per-epoch decay η ← 0.98 η) |
| Step(s, γ) | η₀ γ^⌊t/s⌋ |
| MultiStep(m, γ) | η₀ γ^(number of milestones ≤ t) |
| Cosine(T, η_min) | η_min + (η₀ − η_min)(1 + cos(π min(t, T)/T))/2 |
| LinearWarmup(s, W, f₀) | s(t) · (f₀ + (1 − f₀) min(t, W)/W)  (or, with shift=True, the ramp then s(t − W)) |
| ReduceOnPlateau | η₀ · factorᵏ, k = reductions triggered by the metric values seen before t |
| OneCycle(η_max, T) | warm up from η_max/div to η_max over pct_start·T steps, then anneal to η_max/(div·final_div) |

Each schedule matches ``torch.optim.lr_scheduler`` where PyTorch has it (ExponentialLR, StepLR,
MultiStepLR, CosineAnnealingLR for t ≤ T, LinearLR chained or sequenced, ReduceLROnPlateau,
OneCycleLR without momentum cycling).
"""
from __future__ import annotations

import bisect
import inspect
import math
import operator

__all__ = ["Schedule", "Lambda", "Constant", "Exponential", "Step", "MultiStep", "Cosine", "LinearWarmup",
           "ReduceOnPlateau", "OneCycle"]


def _positive(v, name, who, integer=False, allow_zero=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v >= 0 if allow_zero else v > 0) and (not integer or int(v) == v)
    if not ok:
        kind = "integer" if integer else "number"
        raise ValueError(f"{who}: {name} must be a {'non-negative' if allow_zero else 'positive'} {kind}, got {v!r}")
    return int(v) if integer else float(v)


def _check_t(t, who):
    try:
        if isinstance(t, bool):
            raise TypeError
        t = operator.index(t)
    except TypeError:
        raise TypeError(f"{who}: t must be a non-negative integer (epoch or step), got {t!r}") from None
    if t < 0:
        raise ValueError(f"{who}: t must be >= 0, got {t}")
    return t


class Schedule:
    """Base class: ``lr(t)`` = ``self(t)``; subclasses implement ``_lr(t, base_lr)``."""

    unit = "epoch"

    def __init__(self, base_lr: float | None = None):
        self.base_lr = None if base_lr is None else _positive(base_lr, "base_lr", type(self).__name__,
                                                               allow_zero=True)

    # ------------------------------------------------------------------ evaluation
    def bind(self, base_lr: float) -> "Schedule":
        """Set η₀ if it was not given (the optimizer's learning rate at the start of training)."""
        if self.base_lr is None:
            self.base_lr = _positive(base_lr, "base_lr", type(self).__name__, allow_zero=True)
        return self

    def __call__(self, t: int) -> float:
        t = _check_t(t, type(self).__name__)
        if self.base_lr is None and self._needs_base():
            raise RuntimeError(
                f"{type(self).__name__}: base_lr is not set; pass base_lr=... or attach the schedule "
                "to an optimizer: schedule.apply(optimizer, t) by hand, or gpunet.callbacks.LRScheduler(schedule)"
            )
        return float(self._lr(t, self.base_lr))

    def apply(self, optimizer, t: int) -> float:
        """Set ``optimizer.lr`` to η(t) and return it; η₀, when not given, is the optimizer's rate
        at the first call (what ``LRScheduler`` does at the start of training)."""
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}.apply: expected a gpunet optimizer, got {type(optimizer).__name__}")
        self.bind(optimizer.lr)
        optimizer.lr = self(t)
        return optimizer.lr

    def _needs_base(self) -> bool:
        return True

    def _lr(self, t: int, base: float) -> float:
        raise NotImplementedError

    def values(self, n: int) -> list[float]:
        """[η(0), ..., η(n − 1)]."""
        return [self(t) for t in range(int(n))]

    def plot(self, path, n: int, **kwargs):
        """Write η(t) for t < n to an image file (see ``gpunet.plot.plot_schedule``)."""
        from ..plot import plot_schedule

        return plot_schedule(self, n, path, **kwargs)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state is of a "
                             f"{state.get('type')!r} schedule")
        self.base_lr = None if state["base_lr"] is None else float(state["base_lr"])

    def _config(self) -> str:
        return ""

    def __repr__(self):
        base = "" if self.base_lr is None else f", base_lr={self.base_lr:g}"
        return f"{type(self).__name__}({self._config()}{base})"


class Lambda(Schedule):
    """η(t) = η₀ f(t) for a function f of the epoch (or step) index, as PyTorch's LambdaLR.

    f must return a finite number >= 0. The function itself is not saved in checkpoints (the
    base rate is); the script that resumes a run builds the schedule again."""

    def __init__(self, fn, base_lr=None, unit="epoch"):
        super().__init__(base_lr)
        if not callable(fn) or isinstance(fn, Schedule):
            raise TypeError(f"Lambda: expected a function of the epoch, got {type(fn).__name__}")
        try:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):  # a builtin without a signature
            params = [None]
        if len(params) != 1:
            raise TypeError(f"Lambda: the function must take one argument, the epoch index t, and return the factor "
                            f"f(t) of the base rate (PyTorch's LambdaLR); it takes {len(params)}. For Keras's "
                            "schedule(epoch, lr), write the rate as a function of the epoch alone")
        self.fn = fn
        self.unit = _unit(unit, "Lambda")

    def _lr(self, t, base):
        f = self.fn(t)
        try:
            v = float(f)
            ok = not isinstance(f, bool) and math.isfinite(v) and v >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"Lambda: the function returned {f!r} for t={t}; expected a finite number >= 0")
        return base * v

    def _config(self):
        return getattr(self.fn, "__name__", "fn")


class Constant(Schedule):
    """η(t) = η₀."""

    def __init__(self, base_lr=None, unit="epoch"):
        super().__init__(base_lr)
        self.unit = _unit(unit, "Constant")

    def _lr(self, t, base):
        return base


def _unit(unit, who):
    if unit not in ("epoch", "step"):
        raise ValueError(f"{who}: unit must be 'epoch' or 'step', got {unit!r}")
    return unit


class Exponential(Schedule):
    """η(t) = η₀ γᵗ, per epoch by default (``unit="step"`` for per step)."""

    def __init__(self, gamma: float, base_lr=None, unit="epoch"):
        super().__init__(base_lr)
        self.gamma = _positive(gamma, "gamma", "Exponential")
        self.unit = _unit(unit, "Exponential")

    def _lr(self, t, base):
        return base * self.gamma ** t

    def _config(self):
        return f"gamma={self.gamma:g}"


class Step(Schedule):
    """η(t) = η₀ γ^⌊t / step_size⌋."""

    def __init__(self, step_size: int, gamma: float = 0.1, base_lr=None, unit="epoch"):
        super().__init__(base_lr)
        self.step_size = _positive(step_size, "step_size", "Step", integer=True)
        self.gamma = _positive(gamma, "gamma", "Step")
        self.unit = _unit(unit, "Step")

    def _lr(self, t, base):
        return base * self.gamma ** (t // self.step_size)

    def _config(self):
        return f"step_size={self.step_size}, gamma={self.gamma:g}"


class MultiStep(Schedule):
    """η(t) = η₀ γᵏ with k the number of milestones ≤ t."""

    def __init__(self, milestones, gamma: float = 0.1, base_lr=None, unit="epoch"):
        super().__init__(base_lr)
        ms = [_positive(m, "each milestone", "MultiStep", integer=True) for m in milestones]
        if ms != sorted(ms):
            raise ValueError(f"MultiStep: milestones must be increasing, got {list(milestones)}")
        self.milestones = ms
        self.gamma = _positive(gamma, "gamma", "MultiStep")
        self.unit = _unit(unit, "MultiStep")

    def _lr(self, t, base):
        return base * self.gamma ** bisect.bisect_right(self.milestones, t)

    def _config(self):
        return f"milestones={self.milestones}, gamma={self.gamma:g}"


class Cosine(Schedule):
    """η(t) = η_min + (η₀ − η_min)(1 + cos(π t / T))/2 for t ≤ T, and η_min after T."""

    def __init__(self, T_max: int, eta_min: float = 0.0, base_lr=None, unit="epoch"):
        super().__init__(base_lr)
        self.T_max = _positive(T_max, "T_max", "Cosine", integer=True)
        self.eta_min = _positive(eta_min, "eta_min", "Cosine", allow_zero=True)
        self.unit = _unit(unit, "Cosine")

    def _lr(self, t, base):
        t = min(t, self.T_max)
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2

    def _config(self):
        return f"T_max={self.T_max}, eta_min={self.eta_min:g}"


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
