"""A layer's architecture as data: the constructor arguments it was built with, and the layer
rebuilt from them.

Every ``Layer`` subclass's ``__init__`` records the arguments of its outermost call, bound to its
signature, as it runs (``Layer.__init_subclass__`` wraps it with ``recording``). ``to_config``
turns a model into plain JSON data, nesting the layers among the arguments (a Sequential's
layers, a Residual's block, a WeightNorm's layer):

    {"class": "Sequential", "args": {"layers": {"tuple": [{"layer": {"class": "Linear", ...}}, ...]}}}

and ``from_config`` builds it again. Argument values are JSON numbers, strings, booleans and
None; lists, ``{"tuple": [...]}``, ``{"dict": {...}}``, ``{"layer": config}`` and
``{"dtype": "float32"}`` nest. gpunet's own layers are found by class name; a layer class of
your own joins them with ``@gn.layers.register`` (``gn.load`` must then see the class defined,
i.e. its module imported). A communicator given as ``sync=`` is not architecture and is saved as
None: a loaded model's batch norms are plain ones until rebuilt with ``sync``.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

_REGISTRY: dict[str, type] = {}


def register(cls=None, *, name: str | None = None):
    """``@register`` (or ``@register(name="MyBlock")``) on a Layer subclass: ``gn.load`` can
    rebuild it from a saved config. Another class already registered under the name is an error."""
    def add(c):
        from .base import Layer

        if not (isinstance(c, type) and issubclass(c, Layer)):
            raise TypeError(f"register: expected a gpunet Layer subclass, got {c!r}")
        key = name or c.__name__
        old = _REGISTRY.get(key)
        if old is not None and old is not c and (old.__module__, old.__qualname__) != (c.__module__, c.__qualname__):
            raise ValueError(f"register: the name {key!r} is taken by {old.__module__}.{old.__qualname__}; "
                             f"pass register(name=...) for {c.__module__}.{c.__qualname__}")
        _REGISTRY[key] = c
        c._config_name = key
        return c

    return add if cls is None else add(cls)


def recording(init):
    """Wrap a Layer subclass's ``__init__`` so that its outermost call records its bound arguments."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        if "_config_args" not in self.__dict__:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(sig.parameters)))  # self
            self.__dict__["_config_args"] = (type(self), arguments)
        init(self, *args, **kwargs)

    wrapper.__signature__ = sig
    return wrapper


def _is_communicator(v) -> bool:
    return hasattr(v, "allreduce_gradients") and hasattr(v, "rank")


def _encode(v, where: str):
    from .base import Layer

    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, Layer):
        return {"layer": to_config(v)}
    if isinstance(v, tuple):
        return {"tuple": [_encode(x, where) for x in v]}
    if isinstance(v, list):
        return [_encode(x, where) for x in v]
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise TypeError(f"{where}: a dict argument needs string keys to be saved")
        return {"dict": {k: _encode(x, where) for k, x in v.items()}}
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return {"dtype": np.dtype(v).name}
    if _is_communicator(v):
        return None
    raise TypeError(f"{where} is {type(v).__name__} {v!r:.60}, which a model file cannot hold (numbers, strings, "
                    "layers, dtypes and lists, tuples and dicts of them can); pass it by name, e.g. init='he_normal'")


def _decode(v):
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        (kind, inner), = v.items()
        if kind == "layer":
            return from_config(inner)
        if kind == "tuple":
            return tuple(_decode(x) for x in inner)
        if kind == "dict":
            return {k: _decode(x) for k, x in inner.items()}
        if kind == "dtype":
            return np.dtype(inner).name
        raise ValueError(f"model config: unknown value kind {kind!r}")
    return v


def class_name(cls) -> str:
    """The name a config gives ``cls``: its registered name (gpunet's own layers: the class name)."""
    name = cls.__dict__.get("_config_name")
    if name is None or _REGISTRY.get(name) is not cls:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} is not a registered layer, so a saved model could not "
                        "be rebuilt from its file; decorate the class with @gpunet.layers.register")
    return name


def to_config(layer) -> dict:
    """``{"class": name, "args": {...}}`` for ``layer`` and, nested in its arguments, its sub-layers."""
    from .base import Layer

    rec = layer.__dict__.get("_config_args")
    if rec is None and type(layer).__init__ is Layer.__init__:  # a layer without arguments (ReLU)
        rec = (type(layer), {})
    if rec is None or rec[0] is not type(layer):
        raise TypeError(f"{type(layer).__name__}: no constructor arguments were recorded (a layer made without "
                        "calling its __init__?), so it cannot be saved")
    name = class_name(type(layer))
    args = dict(rec[1])
    current = getattr(layer, "config_arguments", None)  # containers that grow after construction
    if current is not None:
        args.update(current())
    return {"class": name, "args": {k: _encode(v, f"{name}({k})") for k, v in args.items()}}


def from_config(config: dict):
    """The layer ``config`` describes, newly built (fresh weights: load a state dict into it)."""
    if not isinstance(config, dict) or "class" not in config or not isinstance(config.get("args", {}), dict):
        raise ValueError(f"model config: expected {{'class': name, 'args': {{...}}}}, got {str(config)[:80]!r}")
    name = config["class"]
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"model config names the layer {name!r}, which is not registered here: import the module "
                         "that defines it (decorated with @gpunet.layers.register) before gpunet.load")
    args = {k: _decode(v) for k, v in config.get("args", {}).items()}
    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in args if k not in params]
    if unknown:
        raise ValueError(f"model config: {name} takes no argument {unknown[0]!r} (a file from another version?)")
    has_var = any(p.kind is p.VAR_POSITIONAL for p in params.values())
    positional, keywords = [], {}
    for k, p in params.items():
        if k not in args:
            continue
        if p.kind is p.VAR_POSITIONAL:
            positional.extend(args[k])
        elif p.kind is p.VAR_KEYWORD:
            keywords.update(args[k])
        elif p.kind is p.POSITIONAL_ONLY or (has_var and p.kind is p.POSITIONAL_OR_KEYWORD):
            positional.append(args[k])  # before *args, or positional-only: by position
        else:
            keywords[k] = args[k]
    return cls(*positional, **keywords)
