"""Pooling layers: MaxPool2d, AvgPool2d (Numba / CUDA kernels, see gpunet.ops.pool) and GlobalAvgPool2d."""
from __future__ import annotations

from .. import backend
from ..ops import pool as ops
from .base import Layer
from .conv import check_image_input, pair


class _Pool2d(Layer):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        who = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", who, 1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", who, 1)
        self.padding = pair(padding, "padding", who, 0)
        if 2 * self.padding[0] > self.kernel_size[0] or 2 * self.padding[1] > self.kernel_size[1]:
            raise ValueError(f"{who}: padding must be at most half the kernel size, got padding "
                             f"{self.padding} for kernel_size {self.kernel_size}")
        self._x_shape = None

    @property
    def geometry(self):
        return self.kernel_size, self.stride, self.padding

    def _check(self, x):
        x = check_image_input(self, x)
        ops.pool_output_shape(self.name, x.shape, self.geometry)  # a clear error naming the layer
        return x

    def _check_dy(self, dy):
        if self._x_shape is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        expect = ops.pool_output_shape(self.name, self._x_shape, self.geometry)
        if tuple(dy.shape) != expect:
            raise ValueError(f"{self.name}: backward expected dy of shape {expect}, got {tuple(dy.shape)}")

    def output_shape(self, input_shape):
        return ops.pool_output_shape(self.name, (1,) + tuple(input_shape), self.geometry)[1:]

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        return s + (f", padding={self.padding}" if self.padding != (0, 0) else "")


class MaxPool2d(_Pool2d):
    """y[n, c, oh, ow] = max of x over the window at (oh·sh − ph, ow·sw − pw), kh×kw (−∞ padding).

    ``MaxPool2d(kernel_size, stride=None, padding=0)`` as in PyTorch (stride defaults to the
    kernel size; padding at most half the kernel). The backward routes each dy to the element
    that was the maximum (the first one in row-major order on ties), summing where windows overlap.
    """

    def forward(self, x):
        x = self._check(x)
        y, self._idx = ops.maxpool2d_forward(x, self.geometry)
        self._x_shape = tuple(x.shape)
        return y

    def backward(self, dy):
        self._check_dy(dy)
        return ops.maxpool2d_backward(dy, self._idx, self._x_shape, self.geometry)


class AvgPool2d(_Pool2d):
    """y[n, c, oh, ow] = (1 / (kh·kw)) Σ_window x (zero padding counted, PyTorch's
    count_include_pad=True);  dx = dy / (kh·kw) spread over each window."""

    def forward(self, x):
        x = self._check(x)
        self._x_shape = tuple(x.shape)
        return ops.avgpool2d_forward(x, self.geometry)

    def backward(self, dy):
        self._check_dy(dy)
        return ops.avgpool2d_backward(dy, self._x_shape, self.geometry)


class GlobalAvgPool2d(Layer):
    """y[n, c] = (1 / HW) Σ_{h, w} x[n, c, h, w]: (N, C, H, W) -> (N, C);  dx = dy / HW broadcast.

    The output drops the spatial axes (PyTorch's AdaptiveAvgPool2d(1) followed by Flatten), so a
    Linear layer can follow directly.
    """

    def forward(self, x):
        x = check_image_input(self, x)
        self._x_shape = tuple(x.shape)
        return x.mean(axis=(2, 3), dtype=x.dtype)

    def backward(self, dy):
        if getattr(self, "_x_shape", None) is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        n, c, h, w = self._x_shape
        if tuple(dy.shape) != (n, c):
            raise ValueError(f"{self.name}: backward expected dy of shape {(n, c)}, got {tuple(dy.shape)}")
        xp = backend.get_array_module(dy)
        scale = dy.dtype.type(1.0 / (h * w))
        return xp.ascontiguousarray(xp.broadcast_to((dy * scale)[:, :, None, None], self._x_shape))

    def output_shape(self, input_shape):
        return (input_shape[0],)
