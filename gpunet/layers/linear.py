"""Linear (fully connected) layer: y = x Wᵀ + b, W of shape (out_features, in_features)."""
from __future__ import annotations

import copy

from .. import backend
from .. import init as initializers
from ..ops.products import matmul
from .activations import activation_layer
from .base import Layer, check_size
from .checks import check_dy, check_input


class Linear(Layer):
    """y = act(x Wᵀ + b).  Backward: dz = act'(dy), dx = dz W, dW = dzᵀ x, db = Σ_batch dz.

    ``init`` names the weight initializer (default "he_normal"; see ``gpunet.init``) or is a
    callable ``f(shape, fan_in, fan_out, rng) -> ndarray``; ``bias_init`` likewise for the bias, or
    a number (default "zeros"; "uniform" is PyTorch's U(−1/√in_features, 1/√in_features)).
    ``in_features=None``: inferred from the first input (or ``model.build(input_shape)``); the
    weights are drawn then. ``activation``: "relu", "leaky_relu", "tanh", "sigmoid", "softmax" or
    None, applied to the output (Keras's shorthand).
    """

    def __init__(self, in_features: int | None, out_features: int, bias: bool = True,
                 init="he_normal", bias_init="zeros", activation=None, dtype="float32"):
        super().__init__()
        self.out_features = check_size(out_features, "out_features", "Linear")
        self.in_features = None if in_features is None else check_size(in_features, "in_features", "Linear")
        initializers.get(init)  # an unknown name fails here, not at the first forward
        self.has_bias = bool(bias)
        self._init, self._bias_init, self._lazy_dtype = init, bias_init, dtype
        self.__dict__["_act"] = activation_layer(activation, "Linear")  # part of this layer, not a child
        if self.in_features is not None:
            self._materialize(self.in_features, backend.active())
        self._x = None

    def _materialize(self, in_features: int, device: str) -> None:
        self.in_features = in_features
        w = initializers.initialize(self._init, (self.out_features, in_features), dtype=self._lazy_dtype)
        self.add_parameter("weight", backend.to_device(w, device))
        if self.has_bias:
            b = initializers.initialize_bias(self._bias_init, self.out_features, in_features, self._lazy_dtype,
                                             "Linear")
            self.add_parameter("bias", backend.to_device(b, device), decay=False)

    def _built(self) -> bool:
        return self.in_features is not None

    def _detach_saved(self):
        if self._act is not None:
            self.__dict__["_act"] = copy.copy(self._act)  # the snapshot keeps the old one and its state

    def forward(self, x):
        if self.in_features is None:
            x = check_input(self, x, ndim=2)
            self._materialize(int(x.shape[1]), backend.device_of(x))
        x = check_input(self, x, ndim=2, trailing=(self.in_features,), dtype=self.weight.dtype)
        self._x = x
        y = matmul(x, self.weight.T)
        if self.has_bias:
            y += self.bias
        return y if self._act is None else self._act.forward(y)

    def backward(self, dy):
        check_dy(self, dy, None if self._x is None else (len(self._x), self.out_features))
        if self._act is not None:
            dy = self._act.backward(dy)
        matmul(dy.T, self._x, out=self._grads["weight"])
        if self.has_bias:
            dy.sum(axis=0, out=self._grads["bias"])
        if not self.need_input_grad:
            return None
        return matmul(dy, self.weight)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def input_shape_hint(self):
        return None if self.in_features is None else (self.in_features,)

    def extra_repr(self):
        return (f"{self.in_features}, {self.out_features}" + ("" if self.has_bias else ", bias=False")
                + ("" if self._act is None else f", activation={self._act.activation_name!r}"))
