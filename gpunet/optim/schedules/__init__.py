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
| Polynomial(T, p, η_end) | (η₀ − η_end)(1 − min(t, T)/T)ᵖ + η_end  (``cycle=True``: T·⌈t/T⌉ for T) |
| InverseTime(r, s) | η₀ / (1 + r t/s)  (``staircase=True``: ⌊t/s⌋) |
| CosineWarmRestarts(T₀, m, η_min) | η_min + (η₀ − η_min)(1 + cos(π t_cur/T_i))/2, periods T_i = T₀mⁱ |
| Piecewise(b, v) | v[i] for b[i−1] < t ≤ b[i]  (the values are the rates) |
| LinearWarmup(s, W, f₀) | s(t) · (f₀ + (1 − f₀) min(t, W)/W)  (or, with shift=True, the ramp then s(t − W)) |
| ReduceOnPlateau | η₀ · factorᵏ, k = reductions triggered by the metric values seen before t |
| OneCycle(η_max, T) | warm up from η_max/div to η_max over pct_start·T steps, then anneal to η_max/(div·final_div) |

Each schedule matches ``torch.optim.lr_scheduler`` where PyTorch has it (ExponentialLR, StepLR,
MultiStepLR, CosineAnnealingLR for t ≤ T, PolynomialLR, CosineAnnealingWarmRestarts, LinearLR
chained or sequenced, ReduceLROnPlateau, OneCycleLR without momentum cycling), and Keras's
schedules otherwise (PolynomialDecay with cycle, InverseTimeDecay, PiecewiseConstantDecay).

The closed forms are in closed.py, the schedules built on others or on the metrics seen
(LinearWarmup, ReduceOnPlateau, OneCycle) in composed.py, the base class in base.py.
"""
from __future__ import annotations

from .base import Schedule
from .closed import (
    Constant, Cosine, CosineWarmRestarts, Exponential, InverseTime, Lambda, MultiStep, Piecewise, Polynomial, Step,
)
from .composed import LinearWarmup, OneCycle, ReduceOnPlateau

__all__ = ["Schedule", "Lambda", "Constant", "Exponential", "Step", "MultiStep", "Cosine", "Polynomial",
           "InverseTime", "CosineWarmRestarts", "Piecewise", "LinearWarmup", "ReduceOnPlateau", "OneCycle"]
