"""Gradient descent over the arena: SGD with optional momentum or Nesterov, and normalized SGD.

Momentum is kept as a velocity in parameter units, as in the classic formulation:
v ← γv − η∇L, w ← w + v (Nesterov: w ← w + γv − η∇L); the state buffer is called ``velocity``.
PyTorch's ``momentum_buffer`` holds another quantity, b ← γb + ∇L, and steps w ← w − ηb: the
two agree (v = −ηb) while η is constant, and differ after η changes (here a new η scales only
new gradients; in PyTorch it rescales the accumulated buffer too).
"""
from __future__ import annotations

from .base import Optimizer, check_number


class SGD(Optimizer):
    """w ← w − η∇L; with ``momentum`` γ > 0: v ← γv − η∇L, w ← w + v (``nesterov``:
    w ← w + γv − η∇L). Clipping, decay and the non-finite policy: see ``Optimizer``."""

    def __init__(self, model, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0, **kwargs):
        super().__init__(model, lr, weight_decay=weight_decay, **kwargs)
        who = type(self).__name__
        momentum = check_number(momentum, "momentum", who, lo=0.0)
        if nesterov and momentum <= 0:
            raise ValueError(f"{who}: nesterov=True needs momentum > 0, got momentum={momentum}")
        self.hyper.update(momentum=momentum, nesterov=bool(nesterov))
        if momentum > 0:
            self.rule = "momentum"
            self._add_state("velocity")


class NormalizedSGD(SGD):
    """Normalized gradient descent: w ← w − η∇L/(‖∇L‖ + ε), ‖·‖ the global L2 norm over the arena
    (after clipping by norm, if asked); value clipping and decay terms come after the
    normalization. ``momentum``/``nesterov`` as in ``SGD``."""

    def __init__(self, model, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0, eps=1e-8, **kwargs):
        super().__init__(model, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **kwargs)
        self.hyper["eps"] = check_number(eps, "eps", type(self).__name__, lo=0.0, lo_open=True)

    def _norm_eps(self) -> float:
        return self.hyper["eps"]
