"""2-D convolution as matrix products: BLAS on the CPU, cuBLAS through CuPy on the GPU.

With K = C·kh·kw, P = OH·OW, W viewed as (OC, K) and cols_n = im2col(x[n]) (K, P):

    forward:   y[n] = W · cols_n + b
    backward:  dW = Σ_n dy[n] · cols_nᵀ,   db = Σ_{n,p} dy[n, :, p],   dx[n] = col2im(Wᵀ · dy[n])

On the CPU each pass is one Numba parallel region that goes image by image (im2col into a
cache-sized buffer, one BLAS product written straight into the NCHW output, the bias in place)
and recomputes the columns in the backward from the input it keeps; on the GPU one product
covers the batch, with the columns kept from the forward to the backward (see
kernels/im2col/numba_cpu.py and composed.py). The layer's ``Scratch`` holds those buffers from
step to step, so a training step allocates only its outputs.

A ReLU after the convolution is fused into the output pass: the forward writes
y = max(W · cols + b, 0), and the backward multiplies dy by [y > 0] in its first pass (where it
also sums db). This happens for ``Conv2d(..., activation="relu")`` and, in a ``Sequential``, for
a ``Conv2d`` followed directly by a ``ReLU`` layer (the ReLU's own passes are then skipped); the
results are bit for bit those of the two layers run apart.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import backend
from .. import init as initializers
from ..kernels.common.scratch import Scratch
from ..ops import im2col as ops
from ..ops.arrays import contiguous_float
from .activations import ReLU, activation_layer
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
        self._x = self._relu_y = None

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
        act = self._act
        if act is None or type(act) is ReLU:
            return self.forward_fused(x, relu=act is not None)
        return act.forward(self.forward_fused(x))

    def forward_fused(self, x, relu: bool = False):
        """The convolution's output, with max(·, 0) applied in its output pass when ``relu``; the
        next backward then applies ReLU's mask too. (``Sequential`` calls this for Conv2d → ReLU.)"""
        if self.in_channels is None:
            self._materialize(int(check_image_input(self, x).shape[1]), backend.device_of(x))
        x = check_image_input(self, x, self.in_channels)
        self._out_hw(x.shape[2], x.shape[3], x.shape)
        x = contiguous_float(x, self.name, "x")
        y = ops.conv2d_forward(x, self.weight, self.bias if self.has_bias else None, self.stride, self.padding,
                               relu, self._scratch)
        self._x = x  # the backward recomputes (CPU) or reuses (GPU) the columns of x
        self._relu_y = y if relu else None
        return y

    def backward(self, dy):
        if self._x is None:
            raise RuntimeError(f"{self.name}: backward called before forward (or twice after one forward)")
        x = self._x
        expect = (x.shape[0], self.out_channels) + self._out_hw(x.shape[2], x.shape[3], x.shape)
        if tuple(dy.shape) != expect:
            raise ValueError(f"{self.name}: backward expected dy of shape {expect}, got {tuple(dy.shape)}")
        if self._act is not None and self._relu_y is None:
            dy = self._act.backward(dy)
        dy = contiguous_float(dy.astype(self.weight.dtype, copy=False), self.name, "dy")
        self._x = None  # the scratch columns are overwritten by this backward
        return ops.conv2d_backward(x, self.weight, dy, self._relu_y, self._grads["weight"],
                                   self._grads["bias"] if self.has_bias else None, self.need_input_grad,
                                   self.stride, self.padding, self._scratch)

    def _on_moved(self):
        self._scratch.clear()
        self._x = self._relu_y = None

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if not self.has_bias:
            s += ", bias=False"
        if self._act is not None:
            s += f", activation={self._act.activation_name!r}"
        return s
