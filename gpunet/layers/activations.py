"""Element-wise activations and Softmax. Each stores what its backward needs from the forward."""
from __future__ import annotations

import math

from .. import backend
from ..ops import activation as ops
from .base import Layer
from .checks import check_dy, check_input


class ReLU(Layer):
    """y = max(x, 0);  dx = dy · [x > 0].

    The backward pass is a product with the mask, not a select, so a NaN or infinite dy stays
    non-finite where the unit is off, which the optimizer's non-finite guard then reports
    instead of a select hiding it. Forward and backward are one kernel pass each
    (gpunet/ops/activation.py); after a ``Conv2d`` in a ``Sequential`` the convolution applies
    it in its own output pass instead (see ``Conv2d``), with the same result.
    """

    _y = None  # the forward's output, which backward reads

    def forward(self, x):
        x = check_input(self, x)
        self._y = ops.relu(x)
        return self._y

    def backward(self, dy):
        check_dy(self, dy, None if self._y is None else self._y.shape)
        return ops.relu_backward(dy, self._y)


class LeakyReLU(Layer):
    """y = max(x, 0) + α·min(x, 0) (α = negative_slope, PyTorch's default 0.01);  dx = dy · (1 or α),
    the 1 where y > 0 (which, for α ≥ 0, is where x > 0)."""

    _y = None  # the forward's output, which backward reads

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        if not negative_slope >= 0:
            raise ValueError(f"LeakyReLU: negative_slope must be >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        x = check_input(self, x)
        self._y = ops.leaky_relu(x, self.negative_slope)
        return self._y

    def backward(self, dy):
        check_dy(self, dy, None if self._y is None else self._y.shape)
        return ops.leaky_relu_backward(dy, self._y, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Layer):
    """y = tanh(x);  dx = dy · (1 − y²)."""

    _y = None  # the forward's output, which backward reads

    def forward(self, x):
        x = check_input(self, x)
        self._y = ops.tanh(x)
        return self._y

    def backward(self, dy):
        check_dy(self, dy, None if self._y is None else self._y.shape)
        return ops.tanh_backward(dy, self._y)


class Sigmoid(Layer):
    """y = 1 / (1 + e^(−x)), computed without overflow;  dx = dy · y(1 − y)."""

    _y = None  # the forward's output, which backward reads

    def forward(self, x):
        x = check_input(self, x)
        self._y = ops.sigmoid(x)
        return self._y

    def backward(self, dy):
        check_dy(self, dy, None if self._y is None else self._y.shape)
        return ops.sigmoid_backward(dy, self._y)


class Softmax(Layer):
    """y_i = e^(x_i − max x) / Σ_j e^(x_j − max x) along ``dim``;  dx = y · (dy − Σ dy·y).

    For classification, feed logits to ``losses.CrossEntropy`` instead: it fuses log-softmax
    and is more stable.
    """

    _y = None  # the forward's output, which backward reads

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = int(dim)

    def forward(self, x):
        x = check_input(self, x, min_ndim=1)
        xp = backend.get_array_module(x)
        z = xp.exp(x - x.max(axis=self.dim, keepdims=True))
        self._y = z / z.sum(axis=self.dim, keepdims=True)
        return self._y

    def backward(self, dy):
        check_dy(self, dy, None if self._y is None else self._y.shape)
        y = self._y
        return y * (dy - (dy * y).sum(axis=self.dim, keepdims=True))

    def extra_repr(self):
        return f"dim={self.dim}"


class Flatten(Layer):
    """Reshape (N, d1, d2, ...) to (N, d1·d2·...) from ``start_dim`` on; backward restores the shape."""

    _shape = None  # the forward's input shape

    def __init__(self, start_dim: int = 1):
        super().__init__()
        if start_dim < 1:
            raise ValueError(f"Flatten: start_dim must be >= 1 (the batch axis stays), got {start_dim}")
        self.start_dim = int(start_dim)

    def forward(self, x):
        x = check_input(self, x, min_ndim=self.start_dim)
        self._shape = x.shape
        return x.reshape(x.shape[: self.start_dim] + (-1,))

    def backward(self, dy):
        s = self._shape
        check_dy(self, dy, None if s is None else s[: self.start_dim] + (math.prod(s[self.start_dim:]),))
        return dy.reshape(s)

    def output_shape(self, input_shape):
        keep = tuple(input_shape[: self.start_dim - 1])
        n = 1
        for s in input_shape[self.start_dim - 1 :]:
            n *= s
        return keep + (n,)


class Identity(Layer):
    """y = x;  dx = dy."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softmax": Softmax}


def activation_layer(spec, who: str):
    """The activation layer a ``Linear``/``Conv2d`` applies to its output for ``activation=spec``
    (a name of ``ACTIVATIONS``, or None / "linear" for none)."""
    if spec is None or spec == "linear":
        return None
    cls = ACTIVATIONS.get(spec) if isinstance(spec, str) else None
    if cls is None:
        raise ValueError(f"{who}: activation must be one of {sorted(ACTIVATIONS)} or None, got {spec!r}")
    layer = cls()
    layer.activation_name = spec
    layer.name = f"{who} activation {spec!r}"
    return layer
