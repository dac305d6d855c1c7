"""Linear (fully connected) layer: y = x Wᵀ + b, W of shape (out_features, in_features)."""
from __future__ import annotations

from .. import backend
from .. import init as initializers
from .base import Layer
from .checks import check_dy, check_input


class Linear(Layer):
    """y = x Wᵀ + b.  Backward: dx = dy W, dW = dyᵀ x, db = Σ_batch dy.

    ``init`` names the weight initializer (default "he_normal"; see ``gpunet.init``) or is a
    callable ``f(shape, fan_in, fan_out, rng) -> ndarray``; ``bias_init`` likewise for the bias, or
    a number (default "zeros"; "uniform" is PyTorch's U(−1/√in_features, 1/√in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init="he_normal", bias_init="zeros", dtype="float32"):
        super().__init__()
        for arg, v in (("in_features", in_features), ("out_features", out_features)):
            if int(v) != v or v < 1:
                raise ValueError(f"Linear: {arg} must be a positive integer, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        w = initializers.initialize(init, (self.out_features, self.in_features), dtype=dtype)
        self.add_parameter("weight", backend.to_device(w))
        self.has_bias = bool(bias)
        if bias:
            b = initializers.initialize_bias(bias_init, self.out_features, self.in_features, dtype, "Linear")
            self.add_parameter("bias", backend.to_device(b), decay=False)
        self._x = None

    def forward(self, x):
        x = check_input(self, x, ndim=2, trailing=(self.in_features,), dtype=self.weight.dtype)
        self._x = x
        xp = backend.get_array_module(x)
        y = xp.matmul(x, self.weight.T)
        if self.has_bias:
            y += self.bias
        return y

    def backward(self, dy):
        check_dy(self, dy, None if self._x is None else (len(self._x), self.out_features))
        xp = backend.get_array_module(dy)
        xp.matmul(dy.T, self._x, out=self._grads["weight"])
        if self.has_bias:
            dy.sum(axis=0, out=self._grads["bias"])
        if not self.need_input_grad:
            return None
        return xp.matmul(dy, self.weight)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def input_shape_hint(self):
        return (self.in_features,)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}" + ("" if self.has_bias else ", bias=False")
