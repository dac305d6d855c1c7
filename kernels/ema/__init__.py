"""Exponential moving average of the weights over the flat arena: ema ← d·ema + (1 − d)·w."""
