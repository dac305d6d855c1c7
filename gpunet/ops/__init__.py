"""Custom ops: each module checks its arguments, asks the registry (registry.py) for the kernel
tier that runs on those arrays, allocates outputs and calls the tier."""
from . import activation, batchnorm, dropout, ema, global_norm, im2col, optim_update, pool  # noqa: F401  (each registers its op)
from .registry import MODES, OPS, TIERS, register, reset, select_tier

__all__ = ["MODES", "OPS", "TIERS", "register", "reset", "select_tier"]
