"""im2col / col2im and the layout moves around a convolution's matrix product.

See kernels/im2col/reference.py for the formulas. With K = C·kh·kw, M = N·OH·OW and P = OH·OW:

    im2col(x)            x (N, C, H, W)  -> cols (K, M)
    col2im(dcols, ...)   dcols (K, M)    -> dx (N, C, H, W)        (the adjoint of im2col)
    cnhw_to_nchw(yc, b)  yc (OC, M)      -> y (N, OC, OH, OW),     y[n, c] = yc[c, n·P:(n+1)·P] + b[c]
    nchw_to_cnhw(dy)     dy (N, OC, P..) -> dyc (OC, M) and db[c] = Σ_{n,p} dy[n, c, p]

A ReLU that follows the convolution folds into the layout moves: ``relu=True`` writes
max(y, 0) in the same pass, and ``relu_y=y`` multiplies dy by [y > 0] before moving and summing
it (bit for bit what a separate ReLU layer computes).

Each function validates its arguments, picks a kernel tier (gpunet/ops/registry.py),
allocates the output unless ``out=`` is given (a C-contiguous array of the right shape and
dtype), and calls the tier (``OP``, the registry's im2col op).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .arrays import check_out, contiguous_float
from .registry import register


_NAMES = ("im2col", "col2im", "cnhw_to_nchw", "nchw_to_cnhw")


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """(size + 2·padding − kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


OP = register("im2col")


# ----------------------------------------------------------------------------- checks
def _check_geometry(who, x_shape, kh, kw, sh, sw, ph, pw):
    if len(x_shape) != 4:
        raise ValueError(f"{who}: expected an (N, C, H, W) shape, got {tuple(x_shape)}")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{who}: kernel and stride must be >= 1 and padding >= 0, got kernel "
                         f"({kh}, {kw}), stride ({sh}, {sw}), padding ({ph}, {pw})")
    h, w = x_shape[2], x_shape[3]
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"{who}: kernel ({kh}, {kw}) is larger than the padded input "
                         f"({h + 2 * ph}, {w + 2 * pw})")
    return conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)


# ----------------------------------------------------------------------------- ops
def im2col(x, kh, kw, stride=(1, 1), padding=(0, 0), out=None, tier=None):
    """cols (C·kh·kw, N·OH·OW) of x (N, C, H, W); see the module docstring."""
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = _check_geometry("im2col", x.shape, kh, kw, sh, sw, ph, pw)
    x = contiguous_float(x, "im2col", "x")
    n, c = x.shape[:2]
    cols = check_out(out, (c * kh * kw, n * oh * ow), x, "im2col")
    OP.select(x, cols, tier=tier).im2col(x, cols, kh, kw, sh, sw, ph, pw)
    return cols


def col2im(cols, x_shape, kh, kw, stride=(1, 1), padding=(0, 0), out=None, tier=None):
    """dx (N, C, H, W): the adjoint of ``im2col`` applied to ``cols``; overwrites ``out``."""
    (sh, sw), (ph, pw) = stride, padding
    x_shape = tuple(int(s) for s in x_shape)
    oh, ow = _check_geometry("col2im", x_shape, kh, kw, sh, sw, ph, pw)
    n, c = x_shape[:2]
    if tuple(cols.shape) != (c * kh * kw, n * oh * ow):
        raise ValueError(f"col2im(cols): expected shape {(c * kh * kw, n * oh * ow)} for input shape "
                         f"{x_shape}, got {tuple(cols.shape)}")
    cols = contiguous_float(cols, "col2im", "cols")
    dx = check_out(out, x_shape, cols, "col2im")
    OP.select(cols, dx, tier=tier).col2im(cols, dx, kh, kw, sh, sw, ph, pw)
    return dx


def cnhw_to_nchw(yc, bias, shape, out=None, relu=False, tier=None):
    """y (N, C, *spatial) with y[n, c] = yc[c, n·P:(n+1)·P] + bias[c] (then max(y, 0) if ``relu``)."""
    shape = tuple(int(s) for s in shape)
    n, c = shape[:2]
    p = int(np.prod(shape[2:], dtype=np.int64))
    if tuple(yc.shape) != (c, n * p) or tuple(bias.shape) != (c,):
        raise ValueError(f"cnhw_to_nchw: expected yc {(c, n * p)} and bias {(c,)} for output {shape}, "
                         f"got {tuple(yc.shape)} and {tuple(bias.shape)}")
    yc, bias = contiguous_float(yc, "cnhw_to_nchw", "yc"), contiguous_float(bias, "cnhw_to_nchw", "bias")
    y = check_out(out, shape, yc, "cnhw_to_nchw")
    OP.select(yc, bias, y, tier=tier).cnhw_to_nchw(yc, bias, y, bool(relu))
    return y


def nchw_to_cnhw(dy, out=None, dbias=None, relu_y=None, tier=None):
    """(dyc, dbias): dyc (C, N·P) with dyc[c, n·P + p] = g[n, c, p], dbias[c] = Σ_{n,p} g[n, c, p],
    where g = dy, or dy·[relu_y > 0] when the ReLU output ``relu_y`` is given."""
    if dy.ndim < 2:
        raise ValueError(f"nchw_to_cnhw: expected (N, C, ...), got shape {tuple(dy.shape)}")
    dy = contiguous_float(dy, "nchw_to_cnhw", "dy")
    if relu_y is not None:
        if tuple(relu_y.shape) != tuple(dy.shape):
            raise ValueError(f"nchw_to_cnhw(relu_y): expected shape {tuple(dy.shape)}, got {tuple(relu_y.shape)}")
        relu_y = contiguous_float(relu_y, "nchw_to_cnhw", "relu_y").astype(dy.dtype, copy=False)
    n, c = dy.shape[:2]
    dyc = check_out(out, (c, dy.size // max(n * c, 1) * n), dy, "nchw_to_cnhw")
    dbias = check_out(dbias, (c,), dy, "nchw_to_cnhw")
    OP.select(dy, dyc, dbias, relu_y, tier=tier).nchw_to_cnhw(dy, dyc, dbias, relu_y)
    return dyc, dbias


def conv2d_forward(x, weight, bias, stride, padding, relu=False, scratch=None, tier=None):
    """y = W ∗ x + b (max(·, 0) when ``relu``); ``x`` C-contiguous (N, C, H, W) of the weight's dtype."""
    (sh, sw), (ph, pw) = stride, padding
    n, _, h, w = x.shape
    oc, _, kh, kw = weight.shape
    y = backend.get_array_module(x).empty(
        (n, oc, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)), dtype=x.dtype)
    OP.select(x, weight, tier=tier).conv_forward(x, weight, bias, y, kh, kw, sh, sw, ph, pw, bool(relu), scratch)
    return y


def conv2d_backward(x, weight, dy, relu_y, dweight, dbias, need_dx, stride, padding, scratch=None, tier=None):
    """Write dW (and db unless ``dbias`` is None) for the forward on ``x``; return dx, or None
    when ``need_dx`` is False. ``scratch`` must be the forward's."""
    (sh, sw), (ph, pw) = stride, padding
    kh, kw = weight.shape[2:]
    dx = backend.get_array_module(dy).empty(x.shape, dtype=dy.dtype) if need_dx else None
    OP.select(x, dy, tier=tier).conv_backward(x, weight, dy, relu_y, dweight, dbias, dx, kh, kw, sh, sw, ph, pw,
                                              scratch)
    return dx
