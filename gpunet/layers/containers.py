"""Containers: Sequential (a chain of layers), LayerList and LayerDict (collections of child layers)."""
from __future__ import annotations

from .activations import ReLU
from .base import Layer


class Numbered:
    """len, indexing and iteration over a layer's children "0", "1", ... (mixed into Sequential,
    LayerList and Concat)."""

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i: int) -> Layer:
        return list(self._children.values())[i]

    def __iter__(self):
        return iter(self._children.values())


def _fuses_relu(layer) -> bool:
    """Whether ``layer`` can run a ReLU that follows it in its own passes (``forward_fused``):
    exact types only, since a subclass may have its own forward."""
    from .blocks import Residual
    from .conv import Conv2d
    from .normalization import BatchNorm1d, BatchNorm2d

    kind = type(layer)
    return (kind is Conv2d and layer._act is None) or kind in (BatchNorm1d, BatchNorm2d, Residual)


class Sequential(Numbered, Layer):
    """Apply layers in order; backward runs them in reverse, each returning its dx.

    Children are named "0", "1", ..., so parameter names read "0.weight", "0.bias" as in
    PyTorch's ``nn.Sequential``. A layer that can fuse a ReLU (``Conv2d`` without an
    ``activation`` of its own, ``BatchNorm1d``/``BatchNorm2d``, ``Residual``) followed by a
    ``ReLU`` runs as one fused step: the layer applies max(·, 0) in its output pass and the ReLU's
    mask in its backward passes (``forward_fused``), and the ReLU layer's own passes are skipped.
    The ReLU's formulas are the same; every forward number is the same bits as running the two
    apart, and gradients are too, except that a batch norm's float64 sums may add in another
    order (a last-bit difference at most). While either layer is observed by
    ``gpunet.diagnostics.hooks`` (Diagnostics, signal_propagation, locate_nonfinite), the pair runs
    apart, so that each layer is seen.
    """

    _sequential_shapes = True

    def __init__(self, *layers: Layer):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            self.add_child(str(i), layer)
            if layer.name == type(layer).__name__:
                layer.name = f"{type(layer).__name__} (layer {i})"

    def config_arguments(self) -> dict:
        """The layers it holds, for a saved config."""
        return {"layers": tuple(self._children.values())}

    def forward(self, x):
        self._last_input_shape = tuple(x.shape[1:])
        steps = self._steps()
        for layer, relu in steps:
            if relu is None:
                x = layer(x)
            else:
                x = relu._y = layer.forward_fused(x, relu=True)
        self.__dict__["_ran"] = steps  # what backward replays (fused pairs as one step)
        return x

    def _steps(self):
        """[(layer, None) or (layer, relu) for a fused layer → ReLU pair], cached per child list."""
        layers = tuple(self._children.values())
        hooked = tuple(i for i, layer in enumerate(layers) if layer.__dict__.get("_observed"))
        cached = self.__dict__.get("_plan")
        if cached is not None and cached[0] == layers and cached[1] == hooked:
            return cached[2]
        steps, i = [], 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if type(nxt) is ReLU and _fuses_relu(layer) and i not in hooked and i + 1 not in hooked:
                steps.append((layer, nxt))
                i += 2
            else:
                steps.append((layer, None))
                i += 1
        self.__dict__["_plan"] = (layers, hooked, steps)
        return steps

    def backward(self, dy):
        steps = self.__dict__.get("_ran") or self._steps()
        if not steps:
            return dy
        for layer, _ in reversed(steps[1:]):
            dy = layer.backward(dy)
        steps[0][0].need_input_grad = self.need_input_grad
        return steps[0][0].backward(dy)

    def output_shape(self, input_shape):
        for layer in self._children.values():
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def input_shape_hint(self):
        for layer in self._children.values():
            return layer.input_shape_hint()
        return None


class LayerList(Numbered, Layer):
    """A list of child layers, named "0", "1", ... (PyTorch's ``nn.ModuleList``). Assigning a
    non-empty list of layers to a layer's attribute makes one; it holds layers and is not called
    itself: call its items."""

    def __init__(self, layers=()):
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> "LayerList":
        self.add_child(str(len(self._children)), layer)
        return self

    def config_arguments(self) -> dict:
        """The layers it holds now (appended ones too), for a saved config."""
        return {"layers": list(self._children.values())}

    def forward(self, x):
        raise TypeError(f"{self.name}: a LayerList holds layers; call its items (for layer in self.layers: "
                        "x = layer(x)) or use a Sequential")

    backward = Layer.backward


class LayerDict(Layer):
    """A dict of child layers named by their keys (PyTorch's ``nn.ModuleDict``); not called itself."""

    def __init__(self, layers=None):
        super().__init__()
        for key, layer in dict(layers or {}).items():
            self[key] = layer

    def __setitem__(self, key: str, layer: Layer) -> None:
        self.add_child(str(key), layer)

    def config_arguments(self) -> dict:
        """The layers it holds now (added ones too), for a saved config."""
        return {"layers": dict(self._children)}

    def __getitem__(self, key: str) -> Layer:
        return self._children[key]

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(self._children)

    def __contains__(self, key):
        return key in self._children

    def keys(self):
        return self._children.keys()

    def values(self):
        return self._children.values()

    def items(self):
        return self._children.items()

    def forward(self, x):
        raise TypeError(f"{self.name}: a LayerDict holds layers; call its items by key")

    backward = Layer.backward


def as_child(value):
    """A non-empty list, tuple or dict of layers assigned to a layer's attribute, as the child it
    becomes (a LayerList or LayerDict); None when it holds no layer. A collection mixing layers and
    other values is an error."""
    if isinstance(value, (list, tuple, dict)) and value:
        items = list(value.values()) if isinstance(value, dict) else list(value)
        n = sum(isinstance(v, Layer) for v in items)
        if n == 0:
            return None
        if n != len(items):
            raise TypeError("a list or dict assigned to a layer holds layers and other values; keep the layers in a "
                            "collection of their own (it becomes a child layer)")
        return LayerDict(value) if isinstance(value, dict) else LayerList(value)
    return None
