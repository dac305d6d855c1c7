"""PyTorch weights both ways: a gpunet model's state dict as PyTorch tensors, and PyTorch's
``state_dict()`` loaded into a gpunet model.

gpunet names its parameters and buffers as PyTorch does ("0.weight", "1.running_mean",
"block.0.weight", "parametrizations.weight.original0") and lays them out alike (Linear's weight
(out, in), Conv2d's (out, in, kh, kw), BatchNorm's running_var unbiased, num_batches_tracked an
int64 scalar), so the same architecture built in both libraries exchanges weights by name with no
transposition:

    torch_model.load_state_dict(gn.interop.to_torch_state_dict(model))
    gn.interop.from_torch_state_dict(model, torch_model.state_dict())

PyTorch is imported only when these are called.
"""
from __future__ import annotations

from collections import OrderedDict

from . import backend

__all__ = ["to_torch_state_dict", "from_torch_state_dict"]


def to_torch_state_dict(model) -> "OrderedDict[str, object]":
    """Every parameter and buffer of ``model`` as a CPU ``torch.Tensor`` (copies), by name."""
    import torch

    return OrderedDict((k, torch.from_numpy(backend.to_numpy(v).copy())) for k, v in model.state_dict().items())


def from_torch_state_dict(model, state_dict, strict: bool = True):
    """Copy a PyTorch ``state_dict()`` (tensors on any device) into ``model`` in place, by name;
    ``strict`` as in ``Layer.load_state_dict``, whose ``(missing_keys, unexpected_keys)`` it returns."""
    if not hasattr(state_dict, "items"):
        raise TypeError(f"from_torch_state_dict(state_dict): expected a mapping of name -> tensor, got "
                        f"{type(state_dict).__name__}")
    arrays = OrderedDict()
    for k, v in state_dict.items():
        if not hasattr(v, "detach"):
            raise TypeError(f"from_torch_state_dict: {k!r} is {type(v).__name__}, expected a torch.Tensor")
        arrays[k] = v.detach().cpu().numpy()
    return model.load_state_dict(arrays, strict=strict)
