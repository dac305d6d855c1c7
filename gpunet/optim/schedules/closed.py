"""Schedules with a closed form in t (see __init__.py for the table)."""
from __future__ import annotations

import bisect
import inspect
import math

from .base import Schedule, _check_t, _positive, _unit


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


class Polynomial(Schedule):
    """η(t) = (η₀ − η_end)(1 − min(t, T)/T)^power + η_end, as PyTorch's PolynomialLR (η_end = 0)
    and Keras's PolynomialDecay. With ``cycle=True`` (Keras's), T grows to the first multiple of
    the given T at or above t: T·⌈t/T⌉ (T itself at t = 0), so the rate falls again from the
    start value's curve past each multiple instead of staying at η_end."""

    def __init__(self, total: int, power: float = 1.0, end_lr: float = 0.0, cycle: bool = False, base_lr=None,
                 unit="epoch"):
        super().__init__(base_lr)
        self.total = _positive(total, "total", "Polynomial", integer=True)
        self.power = _positive(power, "power", "Polynomial")
        self.end_lr = _positive(end_lr, "end_lr", "Polynomial", allow_zero=True)
        self.cycle = bool(cycle)
        self.unit = _unit(unit, "Polynomial")

    def _lr(self, t, base):
        period = self.total
        if self.cycle:
            period = self.total * max(1, -(-t // self.total))
        else:
            t = min(t, self.total)
        return (base - self.end_lr) * (1 - t / period) ** self.power + self.end_lr

    def _config(self):
        return f"total={self.total}, power={self.power:g}, end_lr={self.end_lr:g}, cycle={self.cycle}"


class InverseTime(Schedule):
    """η(t) = η₀ / (1 + r·t/s), as Keras's InverseTimeDecay (r = decay_rate, s = decay_steps);
    ``staircase=True`` uses ⌊t/s⌋ instead of t/s."""

    def __init__(self, decay_rate: float, decay_steps: int = 1, staircase: bool = False, base_lr=None,
                 unit="epoch"):
        super().__init__(base_lr)
        self.decay_rate = _positive(decay_rate, "decay_rate", "InverseTime", allow_zero=True)
        self.decay_steps = _positive(decay_steps, "decay_steps", "InverseTime", integer=True)
        self.staircase = bool(staircase)
        self.unit = _unit(unit, "InverseTime")

    def _lr(self, t, base):
        p = t // self.decay_steps if self.staircase else t / self.decay_steps
        return base / (1 + self.decay_rate * p)

    def _config(self):
        return f"decay_rate={self.decay_rate:g}, decay_steps={self.decay_steps}, staircase={self.staircase}"


class CosineWarmRestarts(Schedule):
    """SGDR (Loshchilov & Hutter), as PyTorch's CosineAnnealingWarmRestarts:
    η(t) = η_min + (η₀ − η_min)(1 + cos(π t_cur/T_i))/2, where the i-th period lasts
    T_i = T_0·T_multⁱ and t_cur counts from its start (the rate jumps back to η₀ at each restart)."""

    def __init__(self, T_0: int, T_mult: int = 1, eta_min: float = 0.0, base_lr=None, unit="epoch"):
        super().__init__(base_lr)
        self.T_0 = _positive(T_0, "T_0", "CosineWarmRestarts", integer=True)
        self.T_mult = _positive(T_mult, "T_mult", "CosineWarmRestarts", integer=True)
        self.eta_min = _positive(eta_min, "eta_min", "CosineWarmRestarts", allow_zero=True)
        self.unit = _unit(unit, "CosineWarmRestarts")

    def period(self, t: int) -> tuple[int, int]:
        """(t_cur, T_i): the position in the period that t falls in, and that period's length."""
        t = _check_t(t, "CosineWarmRestarts")
        if self.T_mult == 1:
            return t % self.T_0, self.T_0
        length = self.T_0
        while t >= length:  # integer periods: no floating-point logarithm at the boundaries
            t -= length
            length *= self.T_mult
        return t, length

    def _lr(self, t, base):
        t_cur, length = self.period(t)
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t_cur / length)) / 2

    def _config(self):
        return f"T_0={self.T_0}, T_mult={self.T_mult}, eta_min={self.eta_min:g}"


class Piecewise(Schedule):
    """Given rates between given boundaries, as Keras's PiecewiseConstantDecay: η(t) = values[0]
    for t ≤ boundaries[0], values[i] for boundaries[i−1] < t ≤ boundaries[i], values[−1] after the
    last. The values are the learning rates themselves (one more than the boundaries); the
    optimizer's own rate is not used."""

    def __init__(self, boundaries, values, unit="epoch"):
        super().__init__(None)
        bs = [_positive(b, "each boundary", "Piecewise", integer=True, allow_zero=True) for b in boundaries]
        if any(b >= c for b, c in zip(bs, bs[1:])):
            raise ValueError(f"Piecewise: boundaries must be strictly increasing, got {list(boundaries)}")
        vs = [_positive(v, "each value", "Piecewise", allow_zero=True) for v in values]
        if len(vs) != len(bs) + 1:
            raise ValueError(f"Piecewise: expected {len(bs) + 1} values (one more than the {len(bs)} boundaries), "
                             f"got {len(vs)}")
        self.boundaries, self.rates = bs, vs
        self.unit = _unit(unit, "Piecewise")

    def _needs_base(self):
        return False

    def bind(self, base_lr):
        return self  # the values are the rates

    def _lr(self, t, base):
        return self.rates[bisect.bisect_left(self.boundaries, t)]

    def _config(self):
        return f"boundaries={self.boundaries}, values={self.rates}"
