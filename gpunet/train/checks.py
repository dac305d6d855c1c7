"""The Trainer's argument checks, made once at its boundary (construction and the start of
``fit``): each error names the argument and says what was expected."""
from __future__ import annotations

import math
import numbers

from ..data.batching import batch_sizes
from ..layers.activations import Softmax
from ..layers.base import Layer
from ..layers.containers import Sequential
from ..layers.conv import Conv2d
from ..layers.linear import Linear
from ..layers.normalization import _BatchNorm
from .callback import Callback

__all__ = ["resolve_components", "check_verbose", "split_validation", "check_batch_norm_batches"]


def _what(value) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, type):
        return f"the class {value.__name__} (pass an instance: {value.__name__}(...))"
    return f"a {type(value).__name__}"


def _named(get, spec, *args, arg: str):
    try:
        return get(spec, *args)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Trainer({arg}): {exc}") from None


def resolve_components(model, loss, optimizer, callbacks):
    """``Trainer(model, loss, optimizer, callbacks=...)``: a gpunet model; a loss instance or name;
    an optimizer built for this very model, or a name (built here), or None (evaluate and predict
    only); Callback instances. Returns the loss and the optimizer."""
    from .. import losses, optim

    if not isinstance(model, Layer):
        raise TypeError(f"Trainer(model): expected a gpunet model (a gpunet.Layer), got {_what(model)}")
    loss = _named(losses.get, loss, arg="loss")
    if optimizer is not None:
        optimizer = _named(optim.get, optimizer, model, arg="optimizer")
        stale = optimizer.arena is not model.arena if model.built else optimizer.model is not model
        if stale:
            raise ValueError(
                f"Trainer(optimizer): this {type(optimizer).__name__} updates another model's parameters, so "
                "the model would never train. Build it for this model, "
                f"gpunet.optim.{type(optimizer).__name__}(model, ...), after any model.to(...) (moving a "
                "model gives it new parameter buffers)")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"Trainer(callbacks): item {i} is {_what(cb)}, expected a gpunet Callback "
                            "instance such as gpunet.callbacks.EarlyStopping()")
    last = model
    while isinstance(last, Sequential) and len(last):
        last = last[-1]
    if isinstance(last, (Linear, Conv2d)) and last._act is not None:
        last = last._act
    if isinstance(loss, losses.NLLLoss) and isinstance(last, Softmax):
        raise ValueError("Trainer(loss): NLLLoss takes log-probabilities, but the model ends with a Softmax layer; "
                         "end it with gpunet.functional.log_softmax, or use CrossEntropy on logits")
    if isinstance(loss, losses.CrossEntropy) and isinstance(last, Softmax):
        raise ValueError("Trainer(loss): CrossEntropy takes logits and applies the softmax itself, but the model "
                         "ends with a Softmax layer; remove it (Keras: from_logits=True)")
    return loss, optimizer


def check_verbose(verbose, who: str) -> int:
    """0 (silent), 1 (a progress bar, or one line per epoch when the output is not a terminal) or
    2 (one line per epoch)."""
    if isinstance(verbose, bool):
        verbose = int(verbose)
    if not isinstance(verbose, numbers.Integral) or verbose not in (0, 1, 2):
        raise ValueError(f"{who}(verbose): expected 0 (silent), 1 (progress bar) or 2 (one line per "
                         f"epoch), got {verbose!r}")
    return int(verbose)


def split_validation(x, y, validation_split, who: str):
    """Keras's rule: the last ``validation_split`` fraction of the samples, taken before any
    shuffling, is the validation set. Returns ((x_train, y_train), (x_val, y_val))."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
            or not 0.0 < validation_split < 1.0:
        raise ValueError(f"{who}(validation_split): expected a fraction strictly between 0 and 1, "
                         f"got {validation_split!r}")
    n = len(x)
    cut = int(math.ceil(n * (1.0 - float(validation_split))))
    if cut < 1 or cut >= n:
        raise ValueError(f"{who}(validation_split): {validation_split!r} of {n} samples leaves "
                         f"{cut} for training and {n - cut} for validation; both need at least one")
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def check_batch_norm_batches(model, n: int, batch_size: int, drop_last: bool, who: str, sizes=None) -> None:
    """A batch-norm layer cannot take a training batch of one sample when each sample holds one
    value per channel; say so before the epoch's work rather than at its last batch. ``sizes``
    (data-parallel): (the global batch sizes, the smallest shard of each), what a synchronized
    layer (``sync=``) and a rank-local one normalize over."""
    whole, shards = sizes if sizes is not None else (batch_sizes(n, batch_size, drop_last),) * 2
    for name, layer in model.named_layers():
        if not isinstance(layer, _BatchNorm) or layer.sample_values_per_channel() != 1:
            continue
        synced = getattr(layer, "sync", None) is not None
        if 1 not in (whole if synced else shards):
            continue
        where = f"layer {name!r} ({type(layer).__name__})" if name else type(layer).__name__
        if 1 not in whole:  # only a rank's shard is of one sample
            what = f"{n} samples in batches of {batch_size} leave a rank a shard of 1 sample"
        else:
            what = (f"batch_size=1" if batch_size == 1 else
                    f"{n} samples in batches of {batch_size} leave a last batch of 1 sample")
        raise ValueError(
            f"{who}: {what}, and {where} cannot compute batch statistics from one sample. Pass "
            "drop_last=True or choose another batch_size")
