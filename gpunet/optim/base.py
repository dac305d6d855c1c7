"""The optimizer interface: an update rule over a model's flat parameter arena."""
from __future__ import annotations

import math


def check_lr(lr, who: str) -> float:
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: lr must be a number, got {lr!r}") from None
    if not math.isfinite(lr) or lr < 0:
        raise ValueError(f"{who}: lr must be a finite number >= 0, got {lr}")
    return lr


class Optimizer:
    """Holds the model's arena (params, grads) and the update's state buffers.

    ``lr`` may be changed between steps (schedules do). Create the optimizer after moving the
    model (``model.to``): moving rebuilds the arena, and a stale optimizer refuses to step.
    """

    def __init__(self, model, lr):
        self.model = model
        self.arena = model.arena
        self.lr = lr
        self.steps = 0

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_lr(value, type(self).__name__)

    def _check_arena(self):
        if self.model.arena is not self.arena:
            raise RuntimeError(
                f"{type(self).__name__}: the model was moved or re-flattened after this optimizer was "
                "created; create the optimizer after model.to(...)"
            )

    def step(self):
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"lr": self.lr, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.lr = state["lr"]
        self.steps = int(state["steps"])
