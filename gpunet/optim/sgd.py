"""Stochastic gradient descent over the arena: w ← w − η∇L."""
from __future__ import annotations

from .base import Optimizer


class SGD(Optimizer):
    """w ← w − η∇L, one in-place update over the whole flat parameter buffer."""

    def __init__(self, model, lr: float = 0.01):
        super().__init__(model, lr)

    def step(self):
        self._check_arena()
        a = self.arena
        a.params -= a.params.dtype.type(self.lr) * a.grads
        self.steps += 1
