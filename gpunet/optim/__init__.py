"""Optimizers over the flat parameter arena."""
from .base import Optimizer
from .sgd import SGD
from . import schedules  # noqa: E402

__all__ = ["Optimizer", "SGD"]
