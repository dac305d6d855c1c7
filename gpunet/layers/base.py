"""The Layer base class: forward and backward, named parameters, child layers, state dicts.

A layer holds its parameters in ``_params`` and their gradients in ``_grads`` (name -> array),
non-trained state such as batch-norm running statistics in ``_buffers``, and sub-layers in
``_children``: a layer (or a non-empty list or dict of layers) assigned as an attribute is a
child, named by the attribute as in PyTorch ("fc1.weight", "blocks.0.weight"). ``backward(dy)``
returns dx and *overwrites* the gradients of the layer's parameters, so no zero_grad is needed.
A subclass that defines only ``forward`` gets its backward derived from a record of its training
forward (``gpunet.layers.record``). Once a model is flattened (see ``gpunet.arena``), the
parameter and gradient arrays are views into one flat buffer each.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import backend
from . import config, record, state
from .record import Recorded




class ParameterList(list):
    """The arrays of ``Layer.parameters()``; ``owner`` is the layer they came from (so that an
    optimizer given ``model.parameters()`` finds the model's arena)."""

    def __init__(self, owner, arrays):
        super().__init__(arrays)
        self.owner = owner


def check_size(value, arg: str, who: str) -> int:
    """A positive integer size (features, channels); a clear error naming ``who`` and ``arg``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {arg} must be a positive integer, got {value!r}")
    return int(value)


def _holds_layer(items) -> bool:
    for v in items:  # a plain loop: shape tuples are set on the hot path of every forward
        if isinstance(v, Layer):
            return True
    return False


_PLAIN = frozenset({type(None), bool, int, float, str, np.ndarray})


def _owner(cls, attr):
    return next(c for c in cls.__mro__ if attr in c.__dict__)


class Layer:
    """Base class of every layer and container.

    ``need_input_grad`` (default True): when False, ``backward`` may skip computing dx and
    return None. A model's first layer never needs it in training (the data is not trained), so
    the Trainer sets ``model.need_input_grad = False`` and containers pass it to their first
    child; that saves the largest matrix product of an MLP's backward.
    """

    need_input_grad = True
    _frozen = False  # freeze(): parameters out of every update
    _frozen_eval = False  # freeze(eval_mode=True): train() leaves the layer in eval mode
    _freezes = 0  # freeze()/unfreeze() calls in this process: an arena built before one is checked again
    _records = False  # True for forward-only subclasses: backward replays the record of the forward

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # its constructor arguments: the layer's config (layers/config.py)
            cls.__init__ = config.recording(cls.__dict__["__init__"])
        if cls.__module__.split(".")[0] == "gpunet":  # gpunet's own layers are loadable by class name
            config.register(cls)
        f, b = _owner(cls, "forward"), _owner(cls, "backward")
        cls._records = b is Layer and f is not Layer
        if b is not Layer and f is not b and issubclass(f, b):
            raise TypeError(f"{cls.__name__} overrides forward but inherits {b.__name__}.backward, which was written "
                            f"for {b.__name__}.forward; define backward as well, or subclass gpunet.Layer and write "
                            "forward alone (its backward is then derived)")

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_grads", OrderedDict())
        object.__setattr__(self, "_decay", {})
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_children", OrderedDict())
        self.training = True
        self._arena = None
        self.name = type(self).__name__

    # ----------------------------------------------------------------- registration
    def add_parameter(self, name: str, value, decay: bool = True):
        """Register a trainable array. ``decay=False`` keeps it out of weight decay by default
        (biases and batch-norm scales and shifts)."""
        xp = backend.get_array_module(value)
        self._put("_params", name, value)
        self._grads[name] = xp.zeros_like(value)
        self._decay[name] = bool(decay)
        return value

    def add_buffer(self, name: str, value):
        """Register non-trained state that belongs in the state dict (running statistics)."""
        self._put("_buffers", name, value)
        return value

    def _put(self, store: str, name: str, value) -> None:
        """(Re)place a registered array: in its store and as a plain attribute, so that
        ``layer.weight`` is an ordinary attribute read (assigning to it stays refused)."""
        d = self.__dict__
        if name not in d[store]:
            what = "parameter" if store == "_params" else "buffer"
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"{self.name}: a {what} name must be an identifier that does not start with "
                                 f"'_', got {name!r}")
            if name in d or hasattr(type(self), name):
                raise KeyError(f"{self.name}: cannot register {what} {name!r}: the layer already has an "
                               f"attribute of that name")
        d[store][name] = value
        object.__setattr__(self, name, value)

    def add_child(self, name: str, layer: "Layer") -> "Layer":
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: child {name!r} must be a gpunet Layer, got {type(layer).__name__}")
        name = str(name)
        if name not in self._children and (name in self.__dict__ or hasattr(type(self), name)):
            raise KeyError(f"{self.name}: cannot add child {name!r}: the layer already has an attribute of that name")
        self._children[name] = layer
        object.__setattr__(self, name, layer)
        if layer.name == type(layer).__name__ and name.isidentifier():
            layer.name = f"{type(layer).__name__} ({name})"
        return layer

    def __getattr__(self, name):
        # only called when normal lookup fails: expose parameters, buffers and children as attributes
        for store in ("_params", "_buffers", "_children"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name, value):
        d = self.__dict__
        layer = None
        if type(value) in _PLAIN:  # the common case (a forward's saved state): neither a layer nor a container
            pass
        elif isinstance(value, Layer):
            layer = value
        elif isinstance(value, (list, tuple, dict)) and _holds_layer(value.values() if isinstance(value, dict)
                                                                      else value):
            from .containers import as_child  # containers imports this module

            layer = as_child(value)
        if layer is not None:
            if "_children" not in d:
                raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning the layer "
                                     f"{name!r}")
            if name in d["_params"] or name in d["_buffers"]:
                raise KeyError(f"{self.name}: {name!r} is a registered array; a child layer needs another name")
            if name not in d["_children"]:
                d.pop(name, None)  # a plain attribute of that name gives way to the child
            self.add_child(name, layer)
            return
        kids = d.get("_children")  # None inside __init__, before super().__init__()
        if kids is not None:
            if name[0] != "_" and (name in d["_params"] or name in d["_buffers"]):  # registered: public names
                raise AttributeError(
                    f"{self.name}.{name} is a registered array; assign into it (layer.{name}[...] = value) "
                    "so that views into the parameter arena stay valid"
                )
            if name in kids:
                if value is not None:
                    raise TypeError(f"{self.name}.{name} is a child layer; assign a gpunet Layer (or None to remove "
                                    f"it), got {type(value).__name__}")
                del kids[name]
        object.__setattr__(self, name, value)

    # ----------------------------------------------------------------- computation
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy):
        """dx from dy; for a forward-only subclass, the replay of its recorded forward."""
        if self._records:
            return record.backward(self, dy)
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x):
        if type(x) is Recorded:  # called inside a recorded forward: a child's entry
            return record.call(self, x)
        if self._records and self.training:
            return record.forward(self, x)
        return self.forward(x)

    def _functional_dropout(self, index: int, p: float):
        """The ``Dropout`` behind the index-th ``gpunet.functional.dropout`` call of this module's
        forward (made on first use, not a child: no parameters, its random state is this module's)."""
        from .dropout import Dropout

        hidden = self.__dict__.setdefault("_dropouts", [])
        while len(hidden) <= index:
            hidden.append(Dropout(p))
            pending = self.__dict__.get("_pending_rng") or []
            if len(hidden) <= len(pending):
                hidden[-1].set_rng_state(pending[len(hidden) - 1])
            hidden[-1].name = f"{self.name}: functional dropout {len(hidden) - 1}"
        layer = hidden[index]
        if layer.p != p:
            from ..ops.dropout import check_p

            layer.p = check_p(p, "gpunet.functional.dropout")
        return layer

    def output_shape(self, input_shape: tuple) -> tuple:
        """Shape of one sample's output given one sample's input shape (batch axis excluded)."""
        return tuple(input_shape)

    def input_shape_hint(self):
        """One sample's input shape when the layer knows it (Linear does), else None."""
        return None

    # ----------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Layer":
        """Training mode (``mode=False``: evaluation) for this layer and its descendants; a layer
        frozen with ``eval_mode=True`` stays in evaluation mode."""
        self.training = bool(mode) and not self._frozen_eval
        for child in self._children.values():
            child.train(mode)
        return self

    # ----------------------------------------------------------------- freezing
    def freeze(self, eval_mode: bool = True) -> "Layer":
        """Leave the parameters of this layer and its descendants out of every update: the arena
        lays them out after the trained ones and the optimizers step on the trained prefix only
        (the same fused kernels, no mask, no extra launch); clipping norms and weight decay leave
        them out too. Gradients still flow through the layer to the ones before it.

        ``eval_mode=True`` (Keras's ``trainable = False``) also keeps the layers in evaluation
        mode, even under ``model.train()`` and ``fit``: a frozen batch norm normalizes with its
        running statistics and leaves them unchanged, a frozen dropout passes its input through.
        ``eval_mode=False`` (PyTorch's ``requires_grad_(False)``) only stops the updates.

        Freezing changes the arena's layout: create the optimizer after freezing (an optimizer
        made before refuses to step, as after ``model.to``). Returns the layer."""
        for _, layer in self.named_layers():
            layer._frozen, layer._frozen_eval = True, bool(eval_mode)
            if eval_mode:
                layer.training = False
        Layer._freezes += 1
        return self

    def unfreeze(self) -> "Layer":
        """Undo ``freeze`` for this layer and its descendants (the mode is left as it is until the
        next ``train()``/``eval()``). Returns the layer."""
        for _, layer in self.named_layers():
            layer._frozen = layer._frozen_eval = False
        Layer._freezes += 1
        return self

    @property
    def frozen(self) -> bool:
        """True when ``freeze`` left this layer's parameters out of the updates."""
        return self._frozen

    def _frozen_key(self) -> tuple:
        """The names of the frozen parameters: the part of the arena's layout freezing decides."""
        return tuple(full for layer, _, full, _ in self.parameter_entries() if layer._frozen)

    def eval(self) -> "Layer":
        return self.train(False)

    # ----------------------------------------------------------------- traversal
    def children(self):
        return list(self._children.items())

    def named_layers(self, prefix: str = ""):
        """(dotted name, layer) for this layer and every descendant, depth first."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_layers(f"{prefix}.{name}" if prefix else name)

    def _named(self, store: str, prefix: str = ""):
        for pname, arr in getattr(self, store).items():
            yield (f"{prefix}.{pname}" if prefix else pname), arr
        for cname, child in self._children.items():
            yield from child._named(store, f"{prefix}.{cname}" if prefix else cname)

    def parameters(self) -> "ParameterList":
        """Every parameter array, in layer order (PyTorch's ``parameters()``). The list knows its
        model, so ``gn.optim.Adam(model.parameters())`` works as ``Adam(model)``."""
        return ParameterList(self, (a for _, a in self._named("_params")))

    def named_parameters(self):
        """(name, array) for every parameter, in layer order, named as PyTorch's state dict."""
        return list(self._named("_params"))

    def gradients(self) -> list:
        """Every parameter's gradient array, in the order of ``parameters()``."""
        return [g for _, g in self._named("_grads")]

    def named_gradients(self):
        """(name, gradient) for every parameter, in the order of ``named_parameters()``."""
        return list(self._named("_grads"))

    def buffers(self) -> list:
        """Every buffer array (running statistics), in layer order."""
        return [b for _, b in self._named("_buffers")]

    def named_buffers(self):
        """(name, array) for every buffer, named as in the state dict."""
        return list(self._named("_buffers"))

    def parameter_entries(self, prefix: str = ""):
        """(owner layer, local name, full name, decay flag) for every parameter."""
        for pname in self._params:
            yield self, pname, (f"{prefix}.{pname}" if prefix else pname), self._decay[pname]
        for cname, child in self._children.items():
            yield from child.parameter_entries(f"{prefix}.{cname}" if prefix else cname)

    def num_parameters(self) -> int:
        return int(sum(int(np.prod(a.shape)) for a in self.parameters()))

    # ----------------------------------------------------------------- devices and dtypes
    @property
    def device(self) -> str:
        arrays = self.parameters() + self.buffers()
        return backend.device_of(arrays[0]) if arrays else backend.active()

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].dtype if params else np.dtype(np.float32)

    def to(self, device: str | None = None, dtype=None) -> "Layer":
        """Move every parameter and buffer to ``device`` ("cpu"/"gpu") and/or cast floating
        arrays to ``dtype``. A flattened model is flattened again on the new device."""
        had_arena = self._arena is not None
        for _, layer in self.named_layers():
            layer._arena = None
            if dtype is not None and "_lazy_dtype" in layer.__dict__:
                layer._lazy_dtype = np.dtype(dtype)  # for the weights an inferred size will draw
            for store in ("_params", "_buffers"):
                d = getattr(layer, store)
                for k, v in list(d.items()):
                    cast = dtype if (dtype is not None and np.issubdtype(v.dtype, np.floating)) else None
                    layer._put(store, k, backend.to_device(v, device or layer.device, dtype=cast or v.dtype))
            for k, v in layer._params.items():
                xp = backend.get_array_module(v)
                layer._grads[k] = xp.zeros_like(v)
            layer._on_moved()
        if had_arena:
            self.flatten()
        return self

    def _on_moved(self) -> None:
        """Hook for layers that cache device-specific state; called after ``to``."""

    def _detach_saved(self) -> None:
        """Hook for layers that keep their forward's saved values in buffers reused from call to
        call (Conv2d's scratch): take fresh ones, so that a saved snapshot of this call stays intact."""

    def _on_state_loaded(self) -> None:
        """Hook for layers that cache a host copy of a buffer; called after ``load_state_dict``."""

    def _own_array(self):
        """This layer's first parameter or buffer (not its children's), or None."""
        for a in self._params.values():
            return a
        for a in self._buffers.values():
            return a
        return None

    # ----------------------------------------------------------------- sizes known later
    def _built(self) -> bool:
        """False for a layer whose input size is inferred on its first forward and not yet seen."""
        return True

    def unbuilt_layers(self) -> list:
        """Names of the layers whose sizes are not known yet (``Linear(None, n)`` before a forward)."""
        return [name or type(layer).__name__ for name, layer in self.named_layers() if not layer._built()]

    @property
    def built(self) -> bool:
        return not self.unbuilt_layers()

    def build(self, input_shape) -> "Layer":
        """Infer every inferred size from one sample's ``input_shape`` (batch axis excluded): one
        forward pass of a zero sample in eval mode. Returns the model, so
        ``print(model.build((1, 28, 28)))`` shows each layer's output shape."""
        shape = tuple(input_shape)
        if not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
            raise ValueError(f"{self.name}.build: input_shape must be positive integers (one sample, no batch "
                             f"axis), got {input_shape!r}")
        from .summary import zero_forward

        zero_forward(self, shape)
        self._last_input_shape = shape
        return self

    def summary(self, input_shape=None) -> str:
        """The table ``print(model)`` shows: each layer's output shape (for ``input_shape``, one
        sample's shape, or the last one seen) and parameter count."""
        from .summary import summarize

        return summarize(self, None if input_shape is None else tuple(input_shape))

    def flatten(self):
        """Place every parameter of this model in one flat buffer (and every gradient in
        another) and make the layers hold views. Returns the ``Arena``."""
        from ..arena import Arena

        unbuilt = self.unbuilt_layers()
        if unbuilt:
            raise RuntimeError(f"{self.name}: the sizes of {', '.join(unbuilt)} are inferred from the first input "
                               "and none has been seen; run a forward pass or model.build(input_shape) first")

        for _, layer in self.named_layers():
            layer._arena = None
        self._arena = Arena(self)
        return self._arena

    @property
    def arena(self):
        """The model's flat parameter arena, built on first use (and again when freezing changed
        which of its parameters are trained)."""
        a = self._arena
        if a is None:
            return self.flatten()
        if a.freezes != Layer._freezes:  # a freeze somewhere since it was built: is it this model's?
            if a.layout_key != self._frozen_key():
                return self.flatten()
            a.freezes = Layer._freezes
        return a

    # ----------------------------------------------------------------- state
    def state_dict(self) -> "OrderedDict[str, object]":
        """Copies of every parameter and buffer, by PyTorch-style name, on their device."""
        return state.state_dict(self)

    def load_state_dict(self, state_dict, strict: bool = True) -> "state.IncompatibleKeys":
        """Copy values in place (views into the arena stay valid). With ``strict``, missing or
        unexpected keys are an error; a wrong shape always is. Returns the keys it skipped,
        ``(missing_keys, unexpected_keys)``, as PyTorch does."""
        return state.load_state_dict(self, state_dict, strict)

    # ----------------------------------------------------------------- random state hook
    def get_rng_state(self):
        """Randomness a layer draws per forward pass (dropout's step counter; a forward-only
        module's functional dropouts); None if none."""
        hidden = self.__dict__.get("_dropouts")
        if hidden:
            return {"functional_dropout": [d.get_rng_state() for d in hidden]}
        pending = self.__dict__.get("_pending_rng")
        return {"functional_dropout": list(pending)} if pending else None

    def set_rng_state(self, state) -> None:
        if state and "functional_dropout" in state:
            states = list(state["functional_dropout"])
            self.__dict__["_pending_rng"] = states  # for functional dropouts not made yet
            for d, s in zip(self.__dict__.get("_dropouts", []), states):
                d.set_rng_state(s)

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        from .summary import summarize

        return summarize(self)

