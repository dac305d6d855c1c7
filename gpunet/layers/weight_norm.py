"""Weight normalization (Salimans & Kingma, 2016): a layer's weight as a length g times a direction v."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from .base import Layer


class _Parametrizations(Layer):
    """Holds one child per reparametrized weight, as PyTorch's ``module.parametrizations``."""


class _WeightNormParameters(Layer):
    """g ("original0") and v ("original1") of one weight, named as PyTorch's weight_norm."""

    def __init__(self, g, v):
        super().__init__()
        self.add_parameter("original0", g, decay=False)
        self.add_parameter("original1", v)


class WeightNorm(Layer):
    """w = g·v/‖v‖ for the weight of ``layer`` (a ``Linear``, a ``Conv2d``, any layer with that
    weight), the norm over every dimension but ``dim`` (default 0: one length per output unit;
    ``dim=None``: one length for the whole tensor). g and v start as ‖w‖ and w, so the layer's
    output is unchanged at first. Backward, from the layer's dw:
    dg = Σ dw·v/‖v‖ and dv = (g/‖v‖)(dw − dg·v/‖v‖), the sums in float64.

    ``gn.WeightNorm(layer)`` wraps a layer that exists (instead of a ``weight_norm=True`` option
    on each layer class): one implementation for every layer with a weight, the layer itself
    unchanged, and the shape of PyTorch's ``torch.nn.utils.parametrizations.weight_norm(layer)``.
    The state dict follows PyTorch's names: the layer's other parameters as they were ("bias"),
    then ``parametrizations.weight.original0`` (g, of the weight's shape with size 1 on the normed
    dimensions) and ``parametrizations.weight.original1`` (v). v takes weight decay (it stands for
    the weight); g does not (a per-unit scale, as batch norm's γ). Both live in the arena.
    w is computed from g and v at each forward, an array expression over the weights (their size,
    once per step, not per sample): no kernel op of its own.
    """

    def __init__(self, layer: Layer, name: str = "weight", dim: int | None = 0):
        super().__init__()
        who = type(self).__name__
        if not isinstance(layer, Layer):
            raise TypeError(f"{who}: expected a gpunet layer, got {type(layer).__name__}")
        if not layer.built:
            raise ValueError(f"{who}: {layer.name} infers its sizes from the first input; build it first "
                             "(a forward pass or layer.build(input_shape))")
        if layer.children():
            raise TypeError(f"{who}: {layer.name} has child layers; wrap the layer that owns the weight")
        if name not in layer._params:
            raise ValueError(f"{who}: {layer.name} has no parameter {name!r}; it has {list(layer._params)}")
        w = layer._params[name]
        if dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not 0 <= dim < w.ndim:
                raise ValueError(f"{who}: dim must be None or an axis 0..{w.ndim - 1} of the {w.ndim}-D weight, got "
                                 f"{dim!r} (negative axes are refused: PyTorch reads dim=-1 as None)")
            dim = int(dim)
        self.dim, self.weight_name = dim, name
        self._axes = tuple(i for i in range(w.ndim) if i != dim)
        self.__dict__["_inner"] = layer  # not a child: its parameters are this layer's, named as PyTorch's
        for pname, value in layer._params.items():
            if pname != name:
                self.add_parameter(pname, value, decay=layer._decay[pname])
        for bname, value in layer._buffers.items():
            self.add_buffer(bname, value)
        xp = backend.get_array_module(w)
        norm = xp.sqrt((w.astype(np.float64) ** 2).sum(axis=self._axes, keepdims=dim is not None))
        parametrizations = self.add_child("parametrizations", _Parametrizations())
        parametrizations.add_child(name, _WeightNormParameters(xp.asarray(norm, dtype=w.dtype), w.copy()))
        self.name = who
        self._w = self._inv_norm = None

    @property
    def layer(self) -> Layer:
        """The wrapped layer (its weight is computed here)."""
        return self._inner

    def _gv(self):
        p = self.parametrizations._children[self.weight_name]
        return p.original0, p.original1, p._grads

    def _on_moved(self):
        self._w = self._inv_norm = None  # the scratch follows v at the next forward (v may move after this hook)

    def _scratch(self, v):
        """Bind the wrapped layer's weight and weight gradient to scratch arrays of v's device and
        dtype (made again after a move or a cast)."""
        if self._w is None or self._w.dtype != v.dtype or backend.device_of(self._w) != backend.device_of(v):
            xp = backend.get_array_module(v)
            self._w, self._dw = xp.empty_like(v), xp.empty_like(v)
            inner = self._inner
            inner._put("_params", self.weight_name, self._w)
            inner._grads[self.weight_name] = self._dw
            inner._on_moved()

    def _bind(self):
        """The wrapped layer's other parameters, gradients and buffers: this layer's (the arena may
        have moved them since)."""
        inner = self._inner
        for pname, value in self._params.items():
            if inner._params[pname] is not value:
                inner._put("_params", pname, value)
            inner._grads[pname] = self._grads[pname]
        for bname, value in self._buffers.items():
            if inner._buffers[bname] is not value:
                inner._put("_buffers", bname, value)

    def forward(self, x):
        g, v, _ = self._gv()
        xp = backend.get_array_module(v)
        self._scratch(v)
        self._bind()
        inv = 1.0 / xp.sqrt((v.astype(np.float64) ** 2).sum(axis=self._axes, keepdims=self.dim is not None))
        self._w[...] = g.astype(np.float64) * (v * inv)
        self._inv_norm = inv
        inner = self._inner
        inner.training, inner.need_input_grad = self.training, self.need_input_grad
        return inner(x)

    def backward(self, dy):
        if self._inv_norm is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        self._bind()
        dx = self._inner.backward(dy)
        g, v, grads = self._gv()
        inv = self._inv_norm
        direction = v * inv  # v/‖v‖, float64
        dw = self._dw.astype(np.float64)
        dg = (dw * direction).sum(axis=self._axes, keepdims=self.dim is not None)
        grads["original0"][...] = dg.reshape(g.shape)
        grads["original1"][...] = (g.astype(np.float64) * inv) * (dw - dg * direction)
        return dx

    def output_shape(self, input_shape: tuple) -> tuple:
        return self._inner.output_shape(input_shape)

    def input_shape_hint(self):
        return self._inner.input_shape_hint()

    def extra_repr(self):
        inner = self._inner
        return f"{type(inner).__name__}({inner.extra_repr()}), dim={self.dim}"
