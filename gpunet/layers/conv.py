"""2-D convolution by im2col and one matrix product (BLAS on the CPU, cuBLAS through CuPy on the GPU).

With K = C·kh·kw, M = N·OH·OW and W viewed as (OC, K):

    forward:   cols = im2col(x) (K, M);   Yc = W·cols (OC, M);   y[n, o] = Yc[o, n-th block] + b[o]
    backward:  dYc = dy as (OC, M), db = Σ_{n,p} dy;   dW = dYc·colsᵀ;   dx = col2im(Wᵀ·dYc)

The column matrix and the (OC, M) product live in scratch buffers that the layer reuses from
step to step (and the backward writes Wᵀ·dYc over the columns once dW is done), so a training
step allocates only its outputs.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import backend
from .. import init as initializers
from ..ops import im2col as ops
from .activations import activation_layer
from .base import Layer, check_size
from .checks import check_input


def pair(value, arg: str, who: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair; a clear error naming ``who`` otherwise."""
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    ok = len(vals) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals)
    if not ok or min(vals) < minimum:
        raise ValueError(f"{who}: {arg} must be an integer >= {minimum} or a pair of them, got {value!r}")
    return int(vals[0]), int(vals[1])


def check_image_input(layer, x, channels=None):
    """Check an (N, C, H, W) input for ``layer``; cast to the layer's dtype."""
    if hasattr(x, "ndim") and x.ndim != 4:
        hint = " (add a batch axis: x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{layer.name}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}{hint}")
    x = check_input(layer, x, ndim=4, dtype=layer.dtype if layer._params else None)
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{layer.name}: expected {channels} input channels, got input of shape "
                         f"{tuple(x.shape)} with {x.shape[1]} channels")
    return x


class Scratch:
    """Flat scratch buffers reused across steps; a view of the right shape is handed out."""

    def __init__(self):
        self.buffers = {}

    def get(self, key: str, shape, like):
        size = int(np.prod(shape, dtype=np.int64))
        buf = self.buffers.get(key)
        if (buf is None or buf.size < size or buf.dtype != like.dtype
                or backend.device_of(buf) != backend.device_of(like)):
            buf = backend.get_array_module(like).empty(max(size, 1), dtype=like.dtype)
            self.buffers[key] = buf
        return buf[:size].reshape(shape)

    def clear(self):
        self.buffers = {}


class Conv2d(Layer):
    """y[n, o] = b[o] + Σ_{c, i, j} W[o, c, i, j] · x_pad[n, c, oh·sh + i, ow·sw + j].

    ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
    init="he_normal", bias_init="zeros")``: kernel_size, stride and padding are ints or (h, w) pairs; the weight has
    shape (out_channels, in_channels, kh, kw) as in PyTorch, He-normal by default (fan_in =
    in_channels·kh·kw; see ``gpunet.init``), the bias starts at ``bias_init`` (zero by default; a
    number, a name or a callable, drawn with that fan_in) and takes no weight decay.
    Inputs are (N, C, H, W); outputs (N, out_channels, OH, OW) with
    OH = (H + 2·ph − kh) // sh + 1 (likewise OW).

    With ``need_input_grad`` False (see ``Layer``) the backward skips dx (Wᵀ·dYc and col2im) and
    returns None. ``in_channels=None``: inferred from the first input (or ``model.build``);
    ``activation``: "relu", "tanh", … applied to the output, as on ``Linear``.
    """

    def __init__(self, in_channels: int | None, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, init="he_normal", bias_init="zeros", activation=None, dtype="float32"):
        super().__init__()
        self.out_channels = check_size(out_channels, "out_channels", "Conv2d")
        self.in_channels = None if in_channels is None else check_size(in_channels, "in_channels", "Conv2d")
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = pair(stride, "stride", "Conv2d", 1)
        self.padding = pair(padding, "padding", "Conv2d", 0)
        initializers.get(init)  # an unknown name fails here, not at the first forward
        self.has_bias = bool(bias)
        self._init, self._bias_init, self._lazy_dtype = init, bias_init, dtype
        self.__dict__["_act"] = activation_layer(activation, "Conv2d")  # part of this layer, not a child
        if self.in_channels is not None:
            self._materialize(self.in_channels, backend.active())
        self._scratch = Scratch()
        self._cols = None

    def _materialize(self, in_channels: int, device: str) -> None:
        self.in_channels = in_channels
        kh, kw = self.kernel_size
        w = initializers.initialize(self._init, (self.out_channels, in_channels, kh, kw), dtype=self._lazy_dtype)
        self.add_parameter("weight", backend.to_device(w, device))
        if self.has_bias:
            b = initializers.initialize_bias(self._bias_init, self.out_channels, in_channels * kh * kw,
                                             self._lazy_dtype, "Conv2d")
            self.add_parameter("bias", backend.to_device(b, device), decay=False)

    def _built(self) -> bool:
        return self.in_channels is not None

    def _detach_saved(self):
        self._scratch = Scratch()
        if self._act is not None:
            self.__dict__["_act"] = copy.copy(self._act)  # the snapshot keeps the old one and its state

    # ------------------------------------------------------------------ geometry
    def _out_hw(self, h, w, shape):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if kh > h + 2 * ph or kw > w + 2 * pw:
            raise ValueError(f"{self.name}: kernel {kh}x{kw} is larger than the padded input "
                             f"{h + 2 * ph}x{w + 2 * pw} (input shape {tuple(shape)}, padding {self.padding})")
        return ops.conv_output_size(h, kh, sh, ph), ops.conv_output_size(w, kw, sw, pw)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        return (self.out_channels,) + self._out_hw(h, w, ("N",) + tuple(input_shape))

    # ------------------------------------------------------------------ computation
    def forward(self, x):
        if self.in_channels is None:
            self._materialize(int(check_image_input(self, x).shape[1]), backend.device_of(x))
        x = check_image_input(self, x, self.in_channels)
        n, _, h, w = x.shape
        oh, ow = self._out_hw(h, w, x.shape)
        kh, kw = self.kernel_size
        k, m = self.in_channels * kh * kw, n * oh * ow
        xp = backend.get_array_module(x)
        cols = ops.im2col(x, kh, kw, self.stride, self.padding, out=self._scratch.get("cols", (k, m), x))
        yc = self._scratch.get("mat", (self.out_channels, m), x)
        xp.matmul(self.weight.reshape(self.out_channels, k), cols, out=yc)
        bias = self.bias if self.has_bias else self._scratch.get("zero_bias", (self.out_channels,), x)
        if not self.has_bias:
            bias[...] = 0
        self._cols, self._x_shape = cols, tuple(x.shape)
        y = ops.cnhw_to_nchw(yc, bias, (n, self.out_channels, oh, ow))
        return y if self._act is None else self._act.forward(y)

    def backward(self, dy):
        if self._cols is None:
            raise RuntimeError(f"{self.name}: backward called before forward (or twice after one forward)")
        n, _, h, w = self._x_shape
        expect = (n, self.out_channels) + self._out_hw(h, w, self._x_shape)
        if tuple(dy.shape) != expect:
            raise ValueError(f"{self.name}: backward expected dy of shape {expect}, got {tuple(dy.shape)}")
        if self._act is not None:
            dy = self._act.backward(dy)
        dy = dy.astype(self.weight.dtype, copy=False)
        xp = backend.get_array_module(dy)
        k, m = self._cols.shape
        dyc = self._scratch.get("mat", (self.out_channels, m), dy)
        db = self._grads["bias"] if self.has_bias else self._scratch.get("dbias", (self.out_channels,), dy)
        ops.nchw_to_cnhw(dy, out=dyc, dbias=db)
        xp.matmul(dyc, self._cols.T, out=self._grads["weight"].reshape(self.out_channels, k))
        if not self.need_input_grad:
            return None
        dcols = xp.matmul(self.weight.reshape(self.out_channels, k).T, dyc, out=self._cols)
        self._cols = None  # the columns now hold Wᵀ·dYc
        kh, kw = self.kernel_size
        return ops.col2im(dcols, self._x_shape, kh, kw, self.stride, self.padding)

    def _on_moved(self):
        self._scratch.clear()
        self._cols = None

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if not self.has_bias:
            s += ", bias=False"
        if self._act is not None:
            s += f", activation={self._act.activation_name!r}"
        return s
