"""Each built-in layer as ONNX nodes (evaluation semantics), written into a ``Graph``.

    Linear            Gemm(x, W, b, transB=1)            Conv2d        Conv(x, W, b)
    BatchNorm1d/2d    BatchNormalization (running statistics)
    LayerNorm         LayerNormalization (opset 17)      GroupNorm     InstanceNormalization over
                                                                       (N, G, ·), then γ, β
    ReLU, LeakyReLU, Tanh, Sigmoid, Softmax              the ONNX ops of those names
    Flatten           Flatten (start_dim 1) or Reshape   Dropout(2d), Identity   Identity
    MaxPool2d         MaxPool                            AvgPool2d     AveragePool (padding counted)
    GlobalAvgPool2d   GlobalAveragePool, Flatten         WeightNorm    its layer, w = g·v/‖v‖
    Sequential        the layers in order                Residual      Add(block(x), shortcut(x))
    Concat            Concat(branches, axis)

A Linear's or Conv2d's ``activation=`` adds that activation's node. Any other layer — one of
yours, or a subclass of these (its forward may differ) — is refused with its name.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..layers import (
    AvgPool2d, BatchNorm1d, BatchNorm2d, Concat, Conv2d, Dropout, Dropout2d, Flatten, GlobalAvgPool2d, GroupNorm,
    Identity, LayerNorm, LeakyReLU, Linear, MaxPool2d, ReLU, Residual, Sequential, Sigmoid, Softmax, Tanh,
    WeightNorm,
)


class ExportError(TypeError):
    """A model that cannot be written as ONNX, with the layer that stops it."""


class Graph:
    """The nodes and initializers of the graph being written, with unique names."""

    def __init__(self, dtype):
        import onnx

        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers, self._used = [], [], set()

    def name(self, base: str) -> str:
        base = base.replace(".", "_").strip("_") or "t"
        name, i = base, 1
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def const(self, base: str, array, dtype=None) -> str:
        """An initializer holding ``array`` (in the graph's dtype unless ``dtype`` is given)."""
        a = np.asarray(backend.to_numpy(array) if backend.is_array(array) else array,
                       dtype=self.dtype if dtype is None else dtype)
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    def node(self, op: str, inputs: list, base: str, **attrs) -> str:
        out = self.name(f"{base}_{op}")
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _activation(layer, g, x, where):
    act = layer.__dict__.get("_act")
    return x if act is None else convert(act, g, x, f"{where}_act")


def linear(layer, g, x, where, weight=None):
    w = g.const(f"{where}.weight", layer.weight if weight is None else weight)
    inputs = [x, w] + ([g.const(f"{where}.bias", layer.bias)] if layer.has_bias else [])
    return _activation(layer, g, g.node("Gemm", inputs, where, transB=1), where)


def conv2d(layer, g, x, where, weight=None):
    w = g.const(f"{where}.weight", layer.weight if weight is None else weight)
    inputs = [x, w] + ([g.const(f"{where}.bias", layer.bias)] if layer.has_bias else [])
    (ph, pw), (kh, kw) = layer.padding, layer.kernel_size
    y = g.node("Conv", inputs, where, kernel_shape=[kh, kw], strides=list(layer.stride), pads=[ph, pw, ph, pw])
    return _activation(layer, g, y, where)


def batch_norm(layer, g, x, where):
    if not layer.track_running_stats:
        raise ExportError(f"{where} ({layer.name}) has no running statistics (track_running_stats=False): it "
                          "normalizes each batch by its own statistics even in evaluation, which ONNX's "
                          "BatchNormalization does not")
    C = layer.num_features
    scale = layer.weight if layer.affine else np.ones(C)
    shift = layer.bias if layer.affine else np.zeros(C)
    inputs = [x, g.const(f"{where}.weight", scale), g.const(f"{where}.bias", shift),
              g.const(f"{where}.running_mean", layer.running_mean), g.const(f"{where}.running_var", layer.running_var)]
    return g.node("BatchNormalization", inputs, where, epsilon=layer.eps)


def layer_norm(layer, g, x, where):
    shape = layer.normalized_shape
    scale = layer.weight if layer.elementwise_affine else np.ones(shape)
    inputs = [x, g.const(f"{where}.weight", scale)]
    if layer.has_bias:
        inputs.append(g.const(f"{where}.bias", layer.bias))
    return g.node("LayerNormalization", inputs, where, axis=-len(shape), epsilon=layer.eps)


def group_norm(layer, g, x, where):
    """(N, C, ...) → (N, G, ·) normalized per group → (N, C, ·)·γ + β → x's shape."""
    G, C = layer.num_groups, layer.num_channels
    grouped = g.node("Reshape", [x, g.const(f"{where}.groups", [0, G, -1], np.int64)], where)
    y = g.node("InstanceNormalization", [grouped, g.const(f"{where}.ones", np.ones(G)),
                                         g.const(f"{where}.zeros", np.zeros(G))], where, epsilon=layer.eps)
    if layer.affine:
        y = g.node("Reshape", [y, g.const(f"{where}.channels", [0, C, -1], np.int64)], where)
        gamma = g.const(f"{where}.weight", backend.to_numpy(layer.weight).reshape(C, 1))
        beta = g.const(f"{where}.bias", backend.to_numpy(layer.bias).reshape(C, 1))
        y = g.node("Add", [g.node("Mul", [y, gamma], where), beta], where)
    return g.node("Reshape", [y, g.node("Shape", [x], where)], where)


def flatten(layer, g, x, where):
    if layer.start_dim == 1:
        return g.node("Flatten", [x], where, axis=1)
    return g.node("Reshape", [x, g.const(f"{where}.shape", [0] * layer.start_dim + [-1], np.int64)], where)


def pool(op):
    def write(layer, g, x, where):
        (kh, kw), stride, (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        extra = {"count_include_pad": 1} if op == "AveragePool" else {}
        return g.node(op, [x], where, kernel_shape=[kh, kw], strides=list(stride), pads=[ph, pw, ph, pw], **extra)
    return write


def global_avg_pool(layer, g, x, where):
    return g.node("Flatten", [g.node("GlobalAveragePool", [x], where)], where, axis=1)


def simple(op, **attrs_of):
    def write(layer, g, x, where):
        return g.node(op, [x], where, **{k: f(layer) for k, f in attrs_of.items()})
    return write


def sequential(layer, g, x, where):
    for name, child in layer._children.items():
        x = convert(child, g, x, _join(where, name))
    return x


def residual(layer, g, x, where):
    fx = convert(layer._children["block"], g, x, _join(where, "block"))
    sx = convert(layer._children["shortcut"], g, x, _join(where, "shortcut")) if layer.has_shortcut else x
    return g.node("Add", [fx, sx], where)


def concat(layer, g, x, where):
    outs = [convert(child, g, x, _join(where, name)) for name, child in layer._children.items()]
    return g.node("Concat", outs, where, axis=int(layer.axis))


def weight_norm(layer, g, x, where):
    gain, v, _ = layer._gv()
    gain, v = backend.to_numpy(gain).astype(np.float64), backend.to_numpy(v).astype(np.float64)
    axes = layer._axes
    norm = np.sqrt((v ** 2).sum(axis=axes, keepdims=layer.dim is not None))
    w = gain * v / norm
    inner = layer.layer
    write = CONVERTERS.get(type(inner))
    if write not in (linear, conv2d):
        raise ExportError(f"{where} ({layer.name}) wraps {type(inner).__name__}; ONNX export takes a WeightNorm of "
                          "a Linear or Conv2d")
    layer._bind()  # the wrapped layer's bias: this layer's
    return write(inner, g, x, where, weight=w)


CONVERTERS = {
    Linear: linear, Conv2d: conv2d, BatchNorm1d: batch_norm, BatchNorm2d: batch_norm, LayerNorm: layer_norm,
    GroupNorm: group_norm, ReLU: simple("Relu"), Tanh: simple("Tanh"), Sigmoid: simple("Sigmoid"),
    LeakyReLU: simple("LeakyRelu", alpha=lambda layer: float(layer.negative_slope)),
    Softmax: simple("Softmax", axis=lambda layer: int(layer.dim)), Flatten: flatten,
    Identity: simple("Identity"), Dropout: simple("Identity"), Dropout2d: simple("Identity"),
    MaxPool2d: pool("MaxPool"), AvgPool2d: pool("AveragePool"), GlobalAvgPool2d: global_avg_pool,
    Sequential: sequential, Residual: residual, Concat: concat, WeightNorm: weight_norm,
}


def convert(layer, g: Graph, x: str, where: str) -> str:
    """Write ``layer`` applied to the tensor named ``x``; returns its output's name."""
    write = CONVERTERS.get(type(layer))
    if write is None:
        label = where or "the model"
        raise ExportError(f"{label} ({type(layer).__name__}) cannot be exported to ONNX: gpunet.onnx.export writes "
                          f"{', '.join(sorted(c.__name__ for c in CONVERTERS))}")
    return write(layer, g, x, where)
