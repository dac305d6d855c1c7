"""EMA of the weights: the specification (NumPy or CuPy, any float dtype).

    ema ← d·ema + (1 − d)·w,   computed as   ema ← ema + (1 − d)(w − ema)

(the same in exact arithmetic; the second form leaves ema exactly equal to w when they agree
and needs one constant, 1 − d, computed once in float64).
"""
from __future__ import annotations


def ema_update(ema, w, decay):
    ema[...] = (ema + (1.0 - decay) * (w - ema)).astype(ema.dtype)
