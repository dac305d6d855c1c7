"""Gradient descent over the arena: SGD with optional momentum or Nesterov, and normalized SGD.

Momentum is kept as a velocity in parameter units, as in the classic formulation:
v ← γv − η∇L, w ← w + v (Nesterov: w ← w + γv − η∇L); the state buffer is called ``velocity``.
PyTorch's ``momentum_buffer`` holds another quantity, b ← γb + ∇L, and steps w ← w − ηb: the
two agree (v = −ηb) while η is constant, and differ after η changes (here a new η scales only
new gradients; in PyTorch it rescales the accumulated buffer too).
"""
from __future__ import annotations

from .base import Optimizer, check_number
from .rule import RuleSpec


def _dampened(w, g, velocity, lr, t, momentum=0.9, dampening=0.0):
    """Momentum with PyTorch's dampening d: v ← μv − η(1 − d)g, except v ← −ηg at the first
    applied step (PyTorch starts its buffer at g, undamped); w ← w + v."""
    f = 1.0 if t == 1 else 1 - dampening
    velocity = momentum * velocity - lr * f * g
    return w + velocity, velocity


DAMPENED = RuleSpec(_dampened, ("velocity",), "SGD(dampening)")


class SGD(Optimizer):
    """w ← w − η∇L; with ``momentum`` γ > 0: v ← γv − η∇L, w ← w + v (``nesterov``:
    w ← w + γv − η∇L). ``dampening`` d (PyTorch's): v ← γv − η(1 − d)∇L after the first step (the
    first is undamped, as PyTorch's buffer starts at ∇L), one fused pass compiled by Numba (the
    ``update_rule`` machinery); Nesterov needs d = 0, as in PyTorch. Clipping, decay and the
    non-finite policy: see ``Optimizer``."""

    def __init__(self, model, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0, **kwargs):
        super().__init__(model, lr, weight_decay=weight_decay, **kwargs)
        who = type(self).__name__
        momentum = check_number(momentum, "momentum", who, lo=0.0)
        dampening = check_number(dampening, "dampening", who, lo=0.0, hi=1.0)
        if nesterov and momentum <= 0:
            raise ValueError(f"{who}: nesterov=True needs momentum > 0, got momentum={momentum}")
        if nesterov and dampening:
            raise ValueError(f"{who}: nesterov=True needs dampening=0 (as PyTorch), got dampening={dampening}")
        self.hyper.update(momentum=momentum, nesterov=bool(nesterov), dampening=dampening)
        if momentum > 0:
            self.rule = "momentum"
            self._add_state("velocity")

    def step(self) -> None:
        if not (self.hyper["dampening"] and self.hyper["momentum"] > 0):
            return super().step()
        self._rule_step(DAMPENED, momentum=self.hyper["momentum"], dampening=self.hyper["dampening"])


class NormalizedSGD(SGD):
    """Normalized gradient descent: w ← w − η∇L/(‖∇L‖ + ε), ‖·‖ the global L2 norm over the arena
    (after clipping by norm, if asked); value clipping and decay terms come after the
    normalization. ``momentum``/``nesterov`` as in ``SGD``."""

    def __init__(self, model, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0, eps=1e-8, **kwargs):
        super().__init__(model, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **kwargs)
        if self.hyper["dampening"]:
            raise ValueError(f"{type(self).__name__}: dampening is not available with the normalized step")
        self.hyper["eps"] = check_number(eps, "eps", type(self).__name__, lo=0.0, lo_open=True)

    def _norm_eps(self) -> float:
        return self.hyper["eps"]
