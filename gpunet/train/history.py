"""``History``: per-epoch values of a training run, read like a dict of lists."""
from __future__ import annotations

import math
from collections.abc import Mapping


class History(Mapping):
    """``history["loss"]``, ``history["val_accuracy"]``, ``history["lr"]`` ...: one float per
    epoch, in order; ``history.epochs`` are the epoch numbers (0-based). ``plot(path)`` draws
    them (see ``gpunet.plot.plot_history``)."""

    def __init__(self, data: dict | None = None, epochs=None):
        self._data: dict[str, list[float]] = {k: [float(v) for v in vs] for k, vs in (data or {}).items()}
        self.epochs: list[int] = [int(e) for e in (epochs or [])]

    def append(self, epoch: int, logs: dict) -> None:
        """Add one epoch's logs; a key missing in some epochs reads NaN there."""
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
        return {"data": {k: list(v) for k, v in self._data.items()}, "epochs": list(self.epochs)}

    @classmethod
    def from_dict(cls, state: dict) -> "History":
        return cls(state["data"], state["epochs"])

    def plot(self, path, **kwargs):
        """Loss and metrics per epoch (train and validation) and the learning rate, to a file."""
        from ..plot import plot_history

        return plot_history(self, path, **kwargs)

    def __repr__(self):
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items())
        return f"History({len(self.epochs)} epochs{': ' + last if last else ''})"
