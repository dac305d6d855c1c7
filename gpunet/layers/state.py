"""State dicts: every parameter and buffer of a model by dotted name, copied out and loaded back."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from .. import backend

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = ("What ``load_state_dict`` skipped: the model's keys the state lacked, and the "
                            "state's keys the model lacks.")


def _arrays(model) -> "OrderedDict[str, object]":
    """Every parameter and buffer of ``model`` (the arrays themselves), by dotted name."""
    out = OrderedDict()
    for prefix, layer in model.named_layers():
        for store in ("_params", "_buffers"):
            for k, v in getattr(layer, store).items():
                out[f"{prefix}.{k}" if prefix else k] = v
    return out


def state_dict(model) -> "OrderedDict[str, object]":
    """Copies of every parameter and buffer of ``model``, by PyTorch-style name, on their device."""
    return OrderedDict((k, v.copy()) for k, v in _arrays(model).items())


def load_state_dict(model, state, strict: bool = True) -> IncompatibleKeys:
    """Copy ``state``'s values into ``model``'s arrays in place (see ``Layer.load_state_dict``)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{model.name}.load_state_dict: expected a mapping of name -> array (what "
                        f"state_dict() returns), got {type(state).__name__}")
    targets = _arrays(model)
    missing = [k for k in targets if k not in state]
    unexpected = [k for k in state if k not in targets]
    if strict and (missing or unexpected):
        unbuilt = model.unbuilt_layers()
        hint = (f" ({', '.join(unbuilt)} infer their sizes from the first input: model.build(input_shape) "
                "first)") if unbuilt else ""
        raise KeyError(f"{model.name}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}{hint}")
    for k, dst in targets.items():
        if k not in state:
            continue
        src = state[k]
        if tuple(np.shape(src)) != tuple(dst.shape):
            raise ValueError(f"{model.name}.load_state_dict: {k!r} has shape {tuple(np.shape(src))}, "
                             f"the model expects {tuple(dst.shape)}")
        xp = backend.get_array_module(dst)
        dst[...] = backend.to_device(src, backend.device_of(dst), dtype=dst.dtype) if xp is not np \
            else backend.to_numpy(src).astype(dst.dtype, copy=False)
    for _, layer in model.named_layers():
        layer._on_state_loaded()
    return IncompatibleKeys(missing, unexpected)
