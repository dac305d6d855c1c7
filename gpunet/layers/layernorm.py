"""Per-sample normalizations on the layer-norm kernels: LayerNorm (over the last dimensions) and
GroupNorm (over groups of channels), PyTorch's semantics."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..ops import registry
from ..ops.layernorm import layer_norm, layer_norm_backward
from .base import Layer
from .checks import check_input


def _normalized_shape(value, who: str) -> tuple:
    shape = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if not shape or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape):
        raise ValueError(f"{who}: normalized_shape must be a positive integer or a non-empty tuple of them, "
                         f"got {value!r}")
    return tuple(int(d) for d in shape)


class LayerNorm(Layer):
    """y = γ·(x − μ)/√(σ² + ε) + β, μ and σ² the mean and biased variance of each sample over its
    last ``len(normalized_shape)`` dimensions, which must equal ``normalized_shape``; γ
    ("weight", ones) and β ("bias", zeros) have that shape. PyTorch's semantics and names; the
    same in training and evaluation (no running statistics), so any batch size works.

    Backward, per sample with g = dy·γ and D values: dx = (invstd/D)·(D·g − Σg − x̂·Σg·x̂);
    dγ = Σ dy·x̂ and dβ = Σ dy over the samples. ``elementwise_affine=False`` leaves out γ and β,
    ``bias=False`` only β; without them the layer takes float32 or float64 input as it comes.
    γ and β take no weight decay by default, as batch norm's. The kernels:
    kernels/layernorm/ (float64 statistics, two passes or a shifted one: stable for large means).
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype="float32"):
        super().__init__()
        who = type(self).__name__
        self.normalized_shape = _normalized_shape(normalized_shape, who)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{who}: eps must be a positive number, got {eps!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{who}: dtype must be float32 or float64, got {dtype}")
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.has_bias = self.elementwise_affine and bool(bias)
        xp = backend.xp
        if self.elementwise_affine:
            self.add_parameter("weight", xp.ones(self.normalized_shape, dtype=dtype), decay=False)
            if self.has_bias:
                self.add_parameter("bias", xp.zeros(self.normalized_shape, dtype=dtype), decay=False)
        self._saved = None

    def _on_moved(self):
        self._saved = None
        self._constants = None

    def _dtype(self):
        """The parameters' dtype, which a floating input is cast to; None (any) without them."""
        return self.weight.dtype if self.elementwise_affine else None

    def _constant(self, x, which: int):
        """Ones (0) or zeros (1) of the normalized shape, x's dtype and device, kept for reuse."""
        key = (backend.device_of(x), x.dtype)
        if getattr(self, "_constants", None) is None or self._constants[0] != key:
            xp = backend.get_array_module(x)
            self._constants = (key, xp.ones(self.normalized_shape, dtype=x.dtype),
                               xp.zeros(self.normalized_shape, dtype=x.dtype))
        return self._constants[1 + which]

    def _affine(self, x):
        weight = self.weight if self.elementwise_affine else self._constant(x, 0)
        bias = self.bias if self.has_bias else self._constant(x, 1)
        return weight, bias

    def forward(self, x):
        k = len(self.normalized_shape)
        x = check_input(self, x, dtype=self._dtype(), min_ndim=k)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"{self.name}: expected input of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                             f"got {tuple(x.shape)}")
        weight, bias = self._affine(x)
        y, mean, invstd = layer_norm(x, weight, bias, k, self.eps, check=registry.DEBUG)
        self._saved = (x, mean, invstd)
        return y

    def backward(self, dy):
        if self._saved is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        x, mean, invstd = self._saved
        if tuple(dy.shape) != tuple(x.shape):
            raise ValueError(f"{self.name}.backward: dy has shape {tuple(dy.shape)}, expected {tuple(x.shape)} "
                             "(the shape of the forward's output)")
        weight, _ = self._affine(x)
        dw = self._grads["weight"] if self.elementwise_affine else None
        db = self._grads["bias"] if self.has_bias else None
        dx, _, _ = layer_norm_backward(dy, x, weight, mean, invstd, len(self.normalized_shape), dweight=dw,
                                       dbias=db, check=registry.DEBUG)
        return dx

    def extra_repr(self):
        out = f"{self.normalized_shape}, eps={self.eps:g}"
        if not self.elementwise_affine:
            out += ", elementwise_affine=False"
        elif not self.has_bias:
            out += ", bias=False"
        return out


class GroupNorm(Layer):
    """y = γ_c·(x − μ)/√(σ² + ε) + β_c, μ and σ² the mean and biased variance of each sample's group
    of C/G channels (over those channels and every position), γ ("weight", ones) and β ("bias",
    zeros) per channel: PyTorch's GroupNorm. G = 1 is a LayerNorm over (C, …) with a per-channel
    affine; G = C is instance normalization. The same in training and evaluation.

    Runs on the LayerNorm kernels: x of shape (N, C, …) viewed as N·G rows of (C/G)·S values is
    normalized to x̂ without an affine, then y = γ_c·x̂ + β_c. Backward: dβ_c = Σ dy,
    dγ_c = Σ dy·x̂ (over the batch and positions, in float64), and the rows' backward of dy·γ_c.
    γ and β take no weight decay by default.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype="float32"):
        super().__init__()
        who = type(self).__name__
        for name, v in (("num_groups", num_groups), ("num_channels", num_channels)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{who}: {name} must be a positive integer, got {v!r}")
        if num_channels % num_groups:
            raise ValueError(f"{who}: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{who}: eps must be a positive number, got {eps!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{who}: dtype must be float32 or float64, got {dtype}")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps = float(eps)
        self.affine = bool(affine)
        if self.affine:
            xp = backend.xp
            self.add_parameter("weight", xp.ones(self.num_channels, dtype=dtype), decay=False)
            self.add_parameter("bias", xp.zeros(self.num_channels, dtype=dtype), decay=False)
        self._saved = None

    def _on_moved(self):
        self._saved = None
        self._unit = None

    def _unit_affine(self, x, D: int):
        """Ones and zeros of length D, x's dtype and device: the rows' affine, kept for reuse."""
        key = (backend.device_of(x), x.dtype, D)
        if getattr(self, "_unit", None) is None or self._unit[0] != key:
            xp = backend.get_array_module(x)
            self._unit = (key, xp.ones(D, dtype=x.dtype), xp.zeros(D, dtype=x.dtype))
        return self._unit[1], self._unit[2]

    def _channel(self, v, x):
        """A per-channel vector shaped to broadcast against x (N, C, …)."""
        return v.reshape((1, self.num_channels) + (1,) * (x.ndim - 2))

    def forward(self, x):
        x = check_input(self, x, dtype=self.weight.dtype if self.affine else None, min_ndim=2)
        if x.shape[1] != self.num_channels:
            raise ValueError(f"{self.name}: expected {self.num_channels} channels (axis 1), got input shape "
                             f"{tuple(x.shape)}")
        if x.size == 0:
            raise ValueError(f"{self.name}: empty input of shape {tuple(x.shape)}")
        N, G = x.shape[0], self.num_groups
        rows = x.reshape(N * G, x.size // (N * G))
        one, zero = self._unit_affine(x, rows.shape[1])
        xhat, mean, invstd = layer_norm(rows, one, zero, 1, self.eps, check=registry.DEBUG)
        xhat = xhat.reshape(x.shape)
        self._saved = (rows, xhat, mean, invstd)
        if not self.affine:
            return xhat
        return xhat * self._channel(self.weight, x) + self._channel(self.bias, x)

    def backward(self, dy):
        if self._saved is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        rows, xhat, mean, invstd = self._saved
        if tuple(dy.shape) != tuple(xhat.shape):
            raise ValueError(f"{self.name}.backward: dy has shape {tuple(dy.shape)}, expected {tuple(xhat.shape)} "
                             "(the shape of the forward's output)")
        g = dy
        if self.affine:
            axes = (0,) + tuple(range(2, dy.ndim))
            self._grads["bias"][...] = dy.sum(axis=axes, dtype=np.float64)
            self._grads["weight"][...] = (dy * xhat).sum(axis=axes, dtype=np.float64)
            g = dy * self._channel(self.weight, dy)
        one, _ = self._unit_affine(rows, rows.shape[1])
        dx, _, _ = layer_norm_backward(g.reshape(rows.shape), rows, one, mean, invstd, 1, check=registry.DEBUG)
        return dx.reshape(xhat.shape)

    def extra_repr(self):
        out = f"{self.num_groups}, {self.num_channels}, eps={self.eps:g}"
        return out if self.affine else out + ", affine=False"
