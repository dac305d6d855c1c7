"""2-D max and average pooling ops: validate, pick a kernel tier, allocate, call.

See kernels/pool/reference.py for the formulas (floor mode; max pooling records the argmax as
an int32 flat index inside each (n, c) plane; average pooling divides by kh·kw, PyTorch's
count_include_pad=True). ``geometry`` is ((kh, kw), (sh, sw), (ph, pw)).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .arrays import check_out, contiguous_float
from .im2col import conv_output_size
from .registry import register

OP = register("pool")


def pool_output_shape(who, x_shape, geometry):
    """(N, C, OH, OW), after checking the geometry against the input (PyTorch's rules)."""
    (kh, kw), (sh, sw), (ph, pw) = geometry
    if len(x_shape) != 4:
        raise ValueError(f"{who}: expected a 4-D input (N, C, H, W), got shape {tuple(x_shape)}")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0 or 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{who}: need kernel and stride >= 1 and 0 <= padding <= kernel/2, got kernel "
                         f"({kh}, {kw}), stride ({sh}, {sw}), padding ({ph}, {pw})")
    n, c, h, w = (int(s) for s in x_shape)
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"{who}: kernel ({kh}, {kw}) is larger than the padded input "
                         f"({h + 2 * ph}, {w + 2 * pw}) of input shape {tuple(x_shape)}")
    return n, c, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)


def maxpool2d_forward(x, geometry, tier=None):
    """(y, idx): the maximum of every window and its flat index ih·W + iw in the plane (int32)."""
    shape = pool_output_shape("maxpool2d", x.shape, geometry)
    x = contiguous_float(x, "maxpool2d", "x")
    xp = backend.get_array_module(x)
    y = xp.empty(shape, dtype=x.dtype)
    idx = xp.empty(shape, dtype=np.int32)
    OP.select(x, tier=tier).maxpool2d_forward(x, y, idx, *_flat(geometry))
    return y, idx


def maxpool2d_backward(dy, idx, x_shape, geometry, tier=None):
    """dx (x_shape): dy routed to the recorded argmax of each window (summed where windows overlap)."""
    shape = pool_output_shape("maxpool2d_backward", tuple(x_shape), geometry)
    if tuple(dy.shape) != shape or tuple(idx.shape) != shape:
        raise ValueError(f"maxpool2d_backward: expected dy and idx of shape {shape}, got "
                         f"{tuple(dy.shape)} and {tuple(idx.shape)}")
    dy = contiguous_float(dy, "maxpool2d_backward", "dy")
    dx = check_out(None, tuple(x_shape), dy, "maxpool2d_backward")
    OP.select(dy, tier=tier).maxpool2d_backward(dy, idx, dx, *_flat(geometry))
    return dx


def avgpool2d_forward(x, geometry, tier=None):
    """y: the sum of every (zero-padded) window divided by kh·kw."""
    shape = pool_output_shape("avgpool2d", x.shape, geometry)
    x = contiguous_float(x, "avgpool2d", "x")
    y = backend.get_array_module(x).empty(shape, dtype=x.dtype)
    OP.select(x, tier=tier).avgpool2d_forward(x, y, *_flat(geometry), _scale(geometry))
    return y


def avgpool2d_backward(dy, x_shape, geometry, tier=None):
    """dx (x_shape): dy / (kh·kw) spread over every window (summed where windows overlap)."""
    shape = pool_output_shape("avgpool2d_backward", tuple(x_shape), geometry)
    if tuple(dy.shape) != shape:
        raise ValueError(f"avgpool2d_backward: expected dy of shape {shape}, got {tuple(dy.shape)}")
    dy = contiguous_float(dy, "avgpool2d_backward", "dy")
    dx = check_out(None, tuple(x_shape), dy, "avgpool2d_backward")
    OP.select(dy, tier=tier).avgpool2d_backward(dy, dx, *_flat(geometry), _scale(geometry))
    return dx


def _flat(geometry):
    (kh, kw), (sh, sw), (ph, pw) = geometry
    return int(kh), int(kw), int(sh), int(sw), int(ph), int(pw)


def _scale(geometry) -> float:
    (kh, kw), _, _ = geometry
    return 1.0 / (kh * kw)  # float64 on the host
