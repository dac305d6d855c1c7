"""The schedule base class and the argument checks the schedules share (see __init__.py)."""
from __future__ import annotations

import math
import operator


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


def _unit(unit, who):
    if unit not in ("epoch", "step"):
        raise ValueError(f"{who}: unit must be 'epoch' or 'step', got {unit!r}")
    return unit


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
        from ...plot import plot_schedule

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
