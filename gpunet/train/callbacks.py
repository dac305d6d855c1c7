"""Callbacks: hooks the Trainer calls around epochs and batches.

Every hook receives the epoch's logs under the keys of the History ("loss", "accuracy",
"val_loss", "val_accuracy", "lr", ...). A monitor key that the run will not produce is an error
at the start of ``fit`` that lists the keys it will produce. Callbacks that carry state across
epochs (early stopping's counters, the checkpoint files kept, a schedule) save it in the
Trainer's checkpoints, so a resumed run continues exactly.

This module is the callbacks' namespace (``gpunet.callbacks``): it defines the epoch-level ones
(EarlyStopping, ModelCheckpoint, LRScheduler, CSVLogger) and imports the others from their own
modules (the ``Callback`` base from callback.py, TerminateOnNaN, EMA/SWA, Diagnostics).
"""
from __future__ import annotations

import csv
import math
import os
import sys

from .atomic import remove_stale_temporaries
from .averaging import EMA, SWA
from .callback import Callback
from .diagnostics import Diagnostics
from .terminate import NonFiniteLossError, TerminateOnNaN

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LRScheduler", "CSVLogger",
           "TerminateOnNaN", "NonFiniteLossError", "EMA", "SWA", "Diagnostics"]


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        m = monitor.lower()
        return "max" if ("acc" in m or m.endswith("auc") or "f1" in m) else "min"
    return mode


class _Monitor:
    """Best-so-far tracking: improved(v) ⇔ v < best − δ (mode min) or v > best + δ (mode max)."""

    def __init__(self, monitor, mode, min_delta, who):
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"{who}: min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor, self.min_delta = monitor, float(min_delta)
        self.mode = _resolve_mode(mode, monitor, who)

    def initial(self):
        return math.inf if self.mode == "min" else -math.inf

    def improved(self, value, best) -> bool:
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    mode "auto" maximizes keys with "acc" in their name and minimizes the others. With
    ``restore_best`` (default) the model ends training with the weights (and buffers) of the best
    epoch seen. ``baseline``, as Keras 3: an epoch resets the patience count only when it beats
    both the best so far and the baseline; the best epoch is tracked (and restored) whether or not
    any epoch beat the baseline (``beat_baseline`` says which).
    ``start_from_epoch``: a number of epochs (Keras's meaning) left unmonitored at the start
    (warm-up); monitoring begins with epoch ``start_from_epoch + 1``. ``best_epoch`` and
    ``stopped_epoch`` are epoch numbers counted from 1, as the progress lines count them.
    ``verbose=1`` (default) prints one line at the end when it stopped training or restored
    weights, e.g. "stopped after epoch 12; best val_loss 0.0478 at epoch 7; weights restored".
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", patience: int = 0,
                 min_delta: float = 0.0, restore_best: bool = True, baseline: float | None = None,
                 start_from_epoch: int = 0, verbose: int = 1):
        for name, v in (("patience", patience), ("start_from_epoch", start_from_epoch)):
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"EarlyStopping: {name} must be an integer >= 0, got {v!r}")
        self._m = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.monitor, self.mode, self.min_delta = monitor, self._m.mode, self._m.min_delta
        self.patience, self.restore_best = int(patience), bool(restore_best)
        self.start_from_epoch = int(start_from_epoch)
        self.baseline, self.verbose = baseline, verbose
        self.reset()

    def reset(self):
        self.best = self._m.initial()
        self.best_epoch = None
        self.beat_baseline = self.baseline is None
        self.wait = 0
        self.stopped_epoch = None
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self._check_key(self.monitor)

    def on_epoch_end(self, epoch, logs):
        if epoch < self.start_from_epoch:
            return
        if self.monitor not in logs:
            self._check_key(self.monitor, logs)
        value = float(logs[self.monitor])
        if self._m.improved(value, self.best):
            self.best, self.best_epoch = value, int(epoch) + 1
            if self.restore_best:
                self.best_weights = self.trainer.model.state_dict()
            if self.baseline is None or self._m.improved(value, float(self.baseline)):
                self.beat_baseline, self.wait = True, 0
                return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = int(epoch) + 1
            self.trainer.stop_training = True

    def on_train_end(self, logs=None):
        restored = self.restore_best and self.best_weights is not None
        if restored:
            self.trainer.model.load_state_dict(self.best_weights)
            self.trainer.history.restored_epoch = self.best_epoch
        if not self.verbose or (self.stopped_epoch is None and not restored):
            return
        if self.best_epoch is None:
            best = f"{self.monitor} never improved"
        else:
            best = f"best {self.monitor} {self.best:.4g} at epoch {self.best_epoch}"
            if not self.beat_baseline:
                best += f" (the baseline {self.baseline:g} was never beaten)"
        if self.stopped_epoch is None:
            self._print(f"EarlyStopping: {best}; weights restored")
        else:
            self._print(f"EarlyStopping: stopped after epoch {self.stopped_epoch}; {best}"
                  f"{'; weights restored' if restored else ''}")

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights,
                "beat_baseline": self.beat_baseline}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = float(state["best"]), state["best_epoch"], int(state["wait"])
        self.stopped_epoch = state["stopped_epoch"]
        self.beat_baseline = bool(state.get("beat_baseline", self.baseline is None))  # older checkpoints lack it
        bw = state["best_weights"]
        self.best_weights = None if bw is None else dict(bw)

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, patience={self.patience}, "
                f"min_delta={self.min_delta:g}, restore_best={self.restore_best})")


class ModelCheckpoint(Callback):
    """Save a full checkpoint (model, optimizer, schedule, random state, epoch; see
    ``Trainer.save_checkpoint``) at the end of epochs.

    ``path`` may hold fields of the logs and ``{epoch}`` (1-based: the epoch just completed, as
    the progress line numbers it), e.g. ``"ckpt/e{epoch:03d}-{val_loss:.3f}.gnck"``; a missing
    folder is created. ``save_best_only``: only when ``monitor`` improves. ``keep=N``: after each
    save, delete the oldest files beyond the N newest that this callback wrote *in this run* —
    never a file of an earlier run (a resumed run's checkpoint included), never one written
    elsewhere; the new file is complete before an old one goes, so a kill in between leaves one
    file more, never one fewer. Files are written atomically, so an interrupted save leaves the
    previous file intact; at the start of a run, the temporaries that interrupted saves on this
    host left in the folder are removed (see ``gpunet.train.atomic``) and their number printed.
    ``every=N``: only at the end of epochs N, 2N, … (numbered from 1).
    """

    order = 100

    def __init__(self, path, monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = False,
                 keep: int | None = None, min_delta: float = 0.0, verbose: int = 0, every: int = 1):
        try:
            self.every = self._check_every(every)
        except ValueError as exc:
            raise ValueError(f"ModelCheckpoint: {exc}") from None
        if keep is not None and (isinstance(keep, bool) or int(keep) != keep or keep < 1):
            raise ValueError(f"ModelCheckpoint: keep must be a positive integer or None, got {keep!r}")
        self.path = os.fspath(path)
        self._m = _Monitor(monitor, mode, min_delta, "ModelCheckpoint")
        self.monitor, self.mode = monitor, self._m.mode
        self.save_best_only, self.keep, self.verbose = bool(save_best_only), keep, verbose
        self.reset()

    def reset(self):
        self.best = self._m.initial()
        self.saved: list[str] = []  # absolute paths this callback wrote in this run, oldest first
        self._cleaned: set[str] = set()

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            self._check_key(self.monitor)
        try:
            self.path.format(epoch=1, **{k: 0.0 for k in self.trainer.log_keys()})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"ModelCheckpoint: path {self.path!r} has a field that is not a logged key "
                             f"({exc}); available: epoch, {', '.join(self.trainer.log_keys())}") from None
        self.saved, self._cleaned = [], set()  # rotation never reaches back into an earlier run
        folder = os.path.dirname(self.path)
        if "{" not in folder:  # a folder with fields is cleaned when the first save lands there
            self._clean(os.path.abspath(folder))

    def _clean(self, folder: str) -> None:
        self._cleaned.add(folder)
        if not self._is_root:
            return
        count, freed = remove_stale_temporaries(folder)
        if count:
            self._print(f"ModelCheckpoint: removed {count} stale temporary file{'s' * (count != 1)} "
                  f"({freed / 1e6:.1f} MB) that interrupted saves left in {folder!r}", file=sys.stderr)

    def on_epoch_end(self, epoch, logs):
        if not getattr(self.trainer, "epoch_complete", True):
            return  # an epoch cut short is no state to resume from
        if not self._due(epoch):
            return
        if self.save_best_only:
            if self.monitor not in logs:
                self._check_key(self.monitor, logs)
            value = float(logs[self.monitor])
            if not self._m.improved(value, self.best):
                return
            self.best = value
        filename = os.path.abspath(self.path.format(epoch=epoch + 1, **logs))
        folder = os.path.dirname(filename)
        if folder not in self._cleaned:
            self._clean(folder)
        self.trainer.save_checkpoint(filename)  # includes this callback's updated state
        if filename in self.saved:
            self.saved.remove(filename)
        self.saved.append(filename)
        if self.verbose:
            self._print(f"ModelCheckpoint: saved {filename}")
        if self.keep is not None:
            resumed = getattr(self.trainer, "resumed_from", None)
            while len(self.saved) > self.keep:
                old = self.saved.pop(0)
                if not self._is_root or resumed is not None and _same_file(old, resumed):
                    continue  # the checkpoint this run started from stays; other ranks wrote nothing
                try:
                    os.remove(old)
                except FileNotFoundError:
                    pass

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = float(state["best"])


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


class LRScheduler(Callback):
    """Set the optimizer's learning rate from a schedule (``gpunet.optim.schedules``): at the
    start of each epoch for per-epoch schedules, before each step for per-step ones. η₀ is the
    optimizer's rate when training starts unless the schedule was given ``base_lr``.
    ``ReduceOnPlateau`` is fed ``logs[schedule.monitor]`` at the end of each epoch. A plain function
    f of the epoch is ``schedules.Lambda(f)``: η = η₀ f(t), as PyTorch's LambdaLR."""

    def __init__(self, schedule, verbose: int = 0):
        from ..optim.schedules import Lambda, Schedule

        if callable(schedule) and not isinstance(schedule, Schedule):
            try:
                schedule = Lambda(schedule)
            except TypeError as exc:
                raise TypeError(f"LRScheduler: {exc}") from None
        if not isinstance(schedule, Schedule):
            raise TypeError(f"LRScheduler: expected a gpunet.optim.schedules schedule or a function of the epoch, "
                            f"got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose

    def reset(self):
        if hasattr(self.schedule, "history"):
            self.schedule.history = []
        inner = getattr(self.schedule, "schedule", None)
        if inner is not None and hasattr(inner, "history"):
            inner.history = []

    @property
    def _monitor(self):
        return getattr(self.schedule, "monitor", None)

    def on_train_begin(self, logs=None):
        self.schedule.bind(self.trainer.optimizer.lr)
        if self._monitor is not None:
            self._check_key(self._monitor)

    def on_epoch_begin(self, epoch, logs=None):
        if self.schedule.unit == "epoch":
            self.trainer.optimizer.lr = self.schedule(epoch)
            if self.verbose:
                self._print(f"LRScheduler: epoch {epoch + 1}: lr = {self.trainer.optimizer.lr:.6g}")

    def on_batch_begin(self, step, logs=None):
        if self.schedule.unit == "step":
            self.trainer.optimizer.lr = self.schedule(step)

    def on_epoch_end(self, epoch, logs):
        if self._monitor is not None:
            if self._monitor not in logs:
                self._check_key(self._monitor, logs)
            self.schedule.observe(logs[self._monitor])

    def state_dict(self):
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state):
        self.schedule.load_state_dict(state["schedule"])

    def __repr__(self):
        return f"LRScheduler({self.schedule!r})"


class CSVLogger(Callback):
    """One CSV row per epoch ("epoch", numbered from 1, then the logged keys), flushed as it is
    written. A fresh run overwrites the file unless ``append``; a resumed run keeps the rows of
    the epochs up to the checkpoint's and drops any written after it. ``every=N``: a row for
    epochs N, 2N, … only."""

    def __init__(self, path, separator: str = ",", append: bool = False, every: int = 1):
        self.path, self.separator, self.append = os.fspath(path), separator, bool(append)
        try:
            self.every = self._check_every(every)
        except ValueError as exc:
            raise ValueError(f"CSVLogger: {exc}") from None

    def on_train_begin(self, logs=None):
        self.keys = ["epoch"] + list(self.trainer.log_keys())
        self._file = None
        if not self._is_root:  # one file, written by rank 0
            return
        start = int((logs or {}).get("initial_epoch", 0))
        rows = []
        if (start > 0 or self.append) and os.path.exists(self.path):
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f, delimiter=self.separator)
                rows = [r for r in reader if start == 0 or int(r["epoch"]) <= start]
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._file = open(self.path, "w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.keys, delimiter=self.separator,
                                      extrasaction="ignore", restval="")
        self._writer.writeheader()
        for r in rows:
            self._writer.writerow(r)
        self._file.flush()

    def on_epoch_end(self, epoch, logs):
        if not self._due(epoch) or self._file is None:
            return
        self._writer.writerow({"epoch": epoch + 1, **{k: repr(float(v)) for k, v in logs.items()}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
