"""Optimizers over the flat parameter arena."""
from .base import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD"]
