"""The ``Callback`` base class: the hooks the Trainer calls around a run, its epochs and batches."""
from __future__ import annotations

__all__ = ["Callback"]


class Callback:
    """Base class. ``self.trainer`` is set by the Trainer; hooks are no-ops by default.

    Hooks receive ``epoch`` as the 0-based index of the epoch (the first is 0) and ``step`` as
    the 0-based optimizer step; whatever a person reads — messages, logs, file names — numbers
    epochs from 1 (``epoch + 1``), as the progress lines do.

    ``order``: callbacks run in increasing order (stable); checkpoints run last so that they
    save the state every other callback has reached at the end of the epoch.

    ``on_batch_end(step, logs)`` receives the batch just trained on, ``logs = {"x": xb, "y": yb}``
    (device arrays); nothing of a batch is read back to the host. ``on_readback(step, logs)`` runs
    at the Trainer's read-backs (every ``sync_every`` batches and at the end of an epoch) with the
    running means so far; ``trainer.step_stats`` then holds the optimizer's step statistics.

    In a data-parallel run every rank runs every callback on the same (global) logs, so every
    rank takes the same decisions; only rank 0 prints (``_print``) and writes files.
    """

    order = 0

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def reset(self) -> None:
        """Forget the state of a previous run (called at the start of a fresh ``fit``)."""

    def on_train_begin(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_batch_begin(self, step, logs=None): pass
    def on_batch_end(self, step, logs=None): pass
    def on_readback(self, step, logs): pass
    def on_validation_begin(self, epoch): pass
    def on_validation_end(self, epoch, logs): pass
    def on_epoch_end(self, epoch, logs): pass
    def on_train_end(self, logs=None): pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # helpers ------------------------------------------------------------------
    @property
    def _is_root(self) -> bool:
        """False on the ranks of a data-parallel run other than 0, which neither print nor write."""
        return getattr(getattr(self, "trainer", None), "is_root", True)

    def _print(self, *args, **kwargs) -> None:
        if self._is_root:
            print(*args, **kwargs)

    @staticmethod
    def _check_every(every) -> int:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer (epochs), got {every!r}")
        return every

    def _due(self, epoch: int) -> bool:
        """True at the end of epochs every, 2·every, … (numbered from 1) for a callback with ``every``."""
        return (epoch + 1) % getattr(self, "every", 1) == 0

    def _check_key(self, key: str, logs=None) -> None:
        keys = list(logs) if logs is not None else list(self.trainer.log_keys())
        if key not in keys:
            hint = ""
            if key.startswith("val_") and not any(k.startswith("val_") for k in keys):
                hint = " (val_* keys need fit(..., val=...))"
            raise KeyError(f"{type(self).__name__}: monitor {key!r} is not among the logged keys "
                           f"{keys}{hint}")

    def __repr__(self):
        return f"{type(self).__name__}()"
