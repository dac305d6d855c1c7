"""The flat parameter arena: every parameter of a model in one contiguous buffer.

A model's parameters live in ``arena.params`` and their gradients in ``arena.grads`` (same size,
same dtype, same device); each layer holds views into them. So one kernel launch updates every
parameter, one reduction gives the global gradient norm, and optimizer state (momentum, Adam's m
and v) is a buffer of the same size.

Layout: parameters that take weight decay come first, those that don't (biases, batch-norm
scale and shift) after them, and the parameters of frozen layers (``Layer.freeze``) last, so a
parameter group is a range: ``[0, n_decay)`` decays, ``[n_decay, n_train)`` does not, and
``[n_train, size)`` is frozen — the optimizers update the prefix ``[0, n_train)`` alone, with the
same kernels and no mask. Each parameter starts on a multiple of ``ALIGN`` elements (64 bytes
in float32) so that every view is aligned for vector loads; the padding between views is zero in
both buffers and stays zero.

Building the arena copies each parameter's current values and gradient into it, so it may be built
after a backward pass (an optimizer made before a model's inferred sizes were known builds it at
its first step).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend

ALIGN = 16


@dataclass(frozen=True)
class Entry:
    """Where one parameter lives in the arena."""

    name: str
    offset: int
    shape: tuple
    decay: bool
    trainable: bool = True

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _round_up(n: int, k: int) -> int:
    return (n + k - 1) // k * k


class Arena:
    """Flat parameter and gradient buffers for ``model``; rebinds the model's layers to views."""

    def __init__(self, model):
        entries = list(model.parameter_entries())
        if not entries:
            raise ValueError(f"{model.name}: the model has no parameters to place in an arena")
        dtypes = {layer._params[local].dtype for layer, local, _, _ in entries}
        devices = {backend.device_of(layer._params[local]) for layer, local, _, _ in entries}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(
                f"{model.name}: all parameters must share one dtype and one device to share an arena; "
                f"found dtypes {sorted(map(str, dtypes))} on devices {sorted(devices)}"
            )
        self.dtype = dtypes.pop()
        self.device = devices.pop()
        xp = backend.get_array_module(entries[0][0]._params[entries[0][1]])
        self.xp = xp

        frozen = [e for e in entries if e[0]._frozen]
        trained = [e for e in entries if not e[0]._frozen]
        ordered = [e for e in trained if e[3]] + [e for e in trained if not e[3]] + frozen
        layout, offset, n_decay, n_train = [], 0, None, None
        for layer, local, full, decay in ordered:
            if layer._frozen and n_train is None:
                n_train = offset
            if (not decay or layer._frozen) and n_decay is None:
                n_decay = offset
            shape = tuple(layer._params[local].shape)
            layout.append(Entry(full, offset, shape, decay, not layer._frozen))
            offset = _round_up(offset + int(np.prod(shape, dtype=np.int64)), ALIGN)
        self.size = offset
        self.n_train = offset if n_train is None else n_train
        self.n_decay = self.n_train if n_decay is None else n_decay
        self.frozen = tuple(full for _, _, full, _ in frozen)  # names of the frozen parameters
        self.layout_key = model._frozen_key()
        self.freezes = type(model)._freezes  # Layer.arena checks the layout again after a later freeze
        self.params = xp.zeros(self.size, dtype=self.dtype)
        self.grads = xp.zeros(self.size, dtype=self.dtype)
        self.entries = layout

        for (layer, local, _, _), entry in zip(ordered, layout):
            pv = self.params[entry.offset : entry.offset + entry.size].reshape(entry.shape)
            gv = self.grads[entry.offset : entry.offset + entry.size].reshape(entry.shape)
            pv[...] = layer._params[local]
            gv[...] = layer._grads[local]
            layer._put("_params", local, pv)
            layer._grads[local] = gv

    @property
    def num_parameters(self) -> int:
        """Parameters proper, padding excluded."""
        return sum(e.size for e in self.entries)

    def entry(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"arena: no parameter named {name!r}; have {[e.name for e in self.entries]}")

    def trainable(self, buffer):
        """The prefix ``[0, n_train)`` of an arena-sized buffer (params, grads, optimizer state):
        the values that training updates (a view; the whole buffer when nothing is frozen)."""
        return buffer if self.n_train == self.size else buffer[: self.n_train]

    def decay_mask(self):
        """1 where weight decay applies, 0 elsewhere (padding included), on the arena's device."""
        mask = self.xp.zeros(self.size, dtype=self.dtype)
        mask[: self.n_decay] = 1
        return mask

    def __repr__(self) -> str:
        return (f"Arena({len(self.entries)} parameters, {self.num_parameters:,} values in {self.size:,} slots, "
                f"{self.dtype}, {self.device}, decay range [0, {self.n_decay})"
                + (f", frozen from {self.n_train}" if self.n_train < self.size else "") + ")")
