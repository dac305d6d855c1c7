"""Dropout, the specification (NumPy; also runs on CuPy arrays, generating the bits on the host).

Inverted dropout with probability p (keep probability 1 − p):

    forward:  y_i = x_i · m_i · scale,   m_i = [word(offset + i) >= threshold]
    backward: dx_i = dy_i · m_i · scale

where word(g) is the Philox4x32-10 word of element g for (seed, layer_id, step), offset the index
of the tensor's first element in a larger one (0 by default; a shard of a batch), threshold =
min(round(p·2³²), 2³² − 1) (kernels/common/philox.py), and scale = 1/(1 − p) in the arrays'
dtype. The mask is kept as one bit per element, whatever the offset: bit i mod 8 of byte i div 8
(little-endian bit order, as ``numpy.packbits(..., bitorder="little")``), ``ceil(n/8)`` bytes,
unused bits zero. The multiplication (not a select) follows PyTorch: a dropped NaN or Inf stays
NaN.
"""
from __future__ import annotations

import numpy as np

from ..common.philox import dropout_words
from ..common.xp import array_module as _xp, to_numpy as _to_numpy


def keep_mask(n: int, seed: int, layer_id: int, step: int, threshold: int, offset: int = 0) -> np.ndarray:
    """m_i = [word(offset + i) >= threshold] for i < n, as a NumPy bool array."""
    return dropout_words(n, seed, layer_id, step, offset) >= np.uint32(threshold)


def forward(x, y, mask, seed, layer_id, step, threshold, scale, offset=0):
    """y = x · m · scale; mask = m packed one bit per element."""
    xp = _xp(x)
    keep = keep_mask(x.size, seed, layer_id, step, threshold, offset)
    mult = np.where(keep, x.dtype.type(scale), x.dtype.type(0)).astype(x.dtype)
    y[...] = x * xp.asarray(mult.reshape(x.shape))
    mask[...] = xp.asarray(np.packbits(keep, bitorder="little"))


def backward(dy, mask, dx, scale):
    """dx = dy · m · scale, m unpacked from ``mask``."""
    xp = _xp(dy)
    keep = np.unpackbits(_to_numpy(mask), count=dy.size, bitorder="little").astype(bool)
    mult = np.where(keep, dy.dtype.type(scale), dy.dtype.type(0)).astype(dy.dtype)
    dx[...] = dy * xp.asarray(mult.reshape(dy.shape))
