"""Custom ops: each module validates arguments, picks a kernel tier and calls it."""
from .dispatch import TIERS, select_tier

__all__ = ["TIERS", "select_tier"]
