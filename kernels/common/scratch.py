"""Scratch buffers a layer reuses from step to step (NumPy or CuPy, like the array given)."""
from __future__ import annotations

import numpy as np

from .xp import array_module


class Scratch:
    """Flat buffers by key; ``get`` hands out a C-contiguous view of the requested shape and dtype
    on the device of ``like``, reallocating only when the kept buffer is too small or elsewhere."""

    def __init__(self):
        self.buffers = {}

    def get(self, key: str, shape, like, dtype=None):
        dtype = np.dtype(like.dtype if dtype is None else dtype)
        size = int(np.prod(shape, dtype=np.int64))
        xp = array_module(like)
        buf = self.buffers.get(key)
        if buf is None or buf.size < size or buf.dtype != dtype or array_module(buf) is not xp or (
                xp is not np and buf.device != like.device):
            buf = xp.empty(max(size, 1), dtype=dtype)
            self.buffers[key] = buf
        return buf[:size].reshape(shape)

    def nbytes(self) -> int:
        return sum(int(b.nbytes) for b in self.buffers.values())

    def clear(self):
        self.buffers = {}
