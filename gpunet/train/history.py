"""``History``: per-epoch values of a training run, read like a dict of lists."""
from __future__ import annotations

import math
from collections.abc import Mapping


class History(Mapping):
    """``history["loss"]``, ``history["val_accuracy"]``, ``history["lr"]`` ...: one float per
    epoch, in order; ``history.epochs`` are the epoch numbers, counted from 1 as the progress
    lines count them; ``num_epochs`` is how many there are. ``restored_epoch``: the epoch whose
    weights the model ended with, when early stopping restored the best (else None).
    ``plot(path)`` draws them (see ``gpunet.plot.plot_history``)."""

    def __init__(self, data: dict | None = None, epochs=None, restored_epoch: int | None = None):
        self._data: dict[str, list[float]] = {k: [float(v) for v in vs] for k, vs in (data or {}).items()}
        self.epochs: list[int] = [int(e) for e in (epochs or [])]
        self.restored_epoch = None if restored_epoch is None else int(restored_epoch)

    @property
    def num_epochs(self) -> int:
        """The number of epochs recorded."""
        return len(self.epochs)

    def append(self, epoch: int, logs: dict) -> None:
        """Add the logs of epoch number ``epoch`` (1-based); a key missing in some epochs reads
        NaN there."""
        n = len(self.epochs)
        for k, v in logs.items():
            col = self._data.setdefault(k, [math.nan] * n)
            col.append(float(v))
        for k, col in self._data.items():
            if len(col) < n + 1:
                col.append(math.nan)
        self.epochs.append(int(epoch))

    def __getitem__(self, key):
        try:
            return self._data[key]
        except KeyError:
            raise KeyError(f"History has no {key!r}; it has {sorted(self._data)}") from None

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def last(self) -> dict:
        """The logs of the last epoch."""
        return {k: v[-1] for k, v in self._data.items() if v}

    def to_dict(self) -> dict:
        return {"data": {k: list(v) for k, v in self._data.items()}, "epochs": list(self.epochs),
                "first_epoch": 1, "restored_epoch": self.restored_epoch}

    @classmethod
    def from_dict(cls, state: dict) -> "History":
        shift = 1 - int(state.get("first_epoch", 0))  # checkpoints before 1-based numbering held 0, 1, ...
        return cls(state["data"], [int(e) + shift for e in state["epochs"]], state.get("restored_epoch"))

    def plot(self, path, **kwargs):
        """Loss and metrics per epoch (train and validation) and the learning rate, to a file."""
        from ..plot import plot_history

        return plot_history(self, path, **kwargs)

    def __repr__(self):
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items())
        return f"History({self.num_epochs} epochs{': ' + last if last else ''})"
