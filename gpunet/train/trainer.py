"""The Trainer: fit / evaluate / predict around the four-line training step (``train_step``).

    logits = model(x)
    value = loss_fn(logits, y)
    model.backward(loss_fn.backward())
    opt.step()

The data set is checked once per ``fit``/``evaluate`` (shapes, dtypes, finite values, labels in
range), so the step calls the loss's ``forward_trusted`` and reads nothing back. Per-batch loss
and metric values stay on the device (0-d arrays kept, not read); they are read back, all at once
with the optimizer's step statistics, every ``sync_every`` batches when a callback or the
progress bar asks for them, and at the end of an epoch: read-backs are decided by batch count,
never by the clock, so every process of a data-parallel run reads back at the same batch (the
epoch itself: gpunet/train/epoch.py).

Non-finite losses, the policy: without ``TerminateOnNaN`` training goes on, and at the end of an
epoch whose loss is not finite a warning says where non-finite values are now (usually the
parameters). With ``TerminateOnNaN()`` training stops within ``sync_every`` steps and the callback
replays those steps to name the first step and layer that produced a non-finite activation,
gradient or update, leaving the model with the last finite weights (``raise_error=True`` raises
``NonFiniteLossError``). An optimizer whose own policy skips non-finite steps keeps the weights
finite (the default of gpunet's optimizers); the Trainer then leaves batches with a non-finite loss
out of the epoch's loss, warns, and logs their number as ``logs["skipped"]`` (in those epochs only).
"""
from __future__ import annotations

import os
import sys
import time
import weakref

import numpy as np

from .. import backend
from .. import metrics as metrics_mod
from ..data.batching import batches, check_batch_size, num_batches
from ..layers.dropout import batch_offset
from . import checkpoint as ckpt
from .checks import check_batch_norm_batches, check_verbose, resolve_components, split_validation
from .data_checks import check_data, training_data, unpack
from .epoch import train_epoch
from .history import History
from . import parallel
from .tally import Tally

__all__ = ["Trainer"]


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _trusted_forward(loss):
    """The loss's forward for checked data (``Loss.forward_trusted``), or the loss itself."""
    return getattr(loss, "forward_trusted", loss)


class Trainer:
    """``Trainer(model, loss, optimizer, metrics=["accuracy"], callbacks=[...])``.

    ``fit(x, y, epochs=, batch_size=, val=)`` → ``History``; ``evaluate(x, y)`` → dict of
    floats; ``predict(x)`` → outputs on the device. Data is given as ``x, y`` arrays, an ``(x, y)``
    pair or a ``gpunet.data`` dataset. ``loss`` and ``optimizer`` may be names ("cross_entropy",
    "mse"; "adam", "sgd", …: see ``gpunet.losses.get`` and ``gpunet.optim.get``), resolved and
    checked here, as are ``metrics`` ("accuracy", …). ``sync_every``: batches between read-backs of
    the running values, for the progress bar and for callbacks that ask for them
    (``on_readback``: TerminateOnNaN). ``step_stats``: the optimizer's step statistics (host
    floats, ``StepStats.FIELDS``) as of the last read-back.

    ``distributed``: a communicator (``gpunet.distributed.init()``) for data-parallel training:
    ``fit`` starts every rank from rank 0's parameters, trains each rank on its shard of every
    global batch (``batch_size`` is the global batch) and all-reduces the gradients before each
    step; the logs, ``evaluate`` and every callback's decisions are the global ones on every
    rank; rank 0 alone prints and writes checkpoints. A size-1 communicator changes nothing.
    """

    def __init__(self, model, loss, optimizer, metrics=("accuracy",), callbacks=(), sync_every: int = 25,
                 distributed=None):
        loss, optimizer = resolve_components(model, loss, optimizer, callbacks)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        if isinstance(metrics, str) or not hasattr(metrics or (), "__iter__"):
            metrics = [metrics]  # one metric given alone
        try:
            self.metrics = [metrics_mod.get(m) for m in (metrics or ())]
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"Trainer(metrics): {exc}") from None
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"Trainer: metrics must have distinct names, got {names}")
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        for cb in self.callbacks:
            cb.set_trainer(self)
        if int(sync_every) != sync_every or sync_every < 1:
            raise ValueError(f"Trainer: sync_every must be a positive integer, got {sync_every!r}")
        self.sync_every = int(sync_every)
        if distributed is not None and not hasattr(distributed, "allreduce_gradients"):
            raise TypeError(f"Trainer(distributed): expected a communicator from gpunet.distributed.init(), got "
                            f"{type(distributed).__name__}")
        self.distributed = distributed
        self._comm = distributed if distributed is not None and distributed.size > 1 else None
        self.history = History()
        self.epoch = 0            # epochs completed (so the 1-based number of the last one)
        self.epochs = 0           # the epoch count fit was asked to reach
        self.current_epoch = 0    # 0-based index of the epoch under way, as the hooks receive it
        self.resumed_from = None  # the checkpoint this run started from (never rotated away)
        self.global_step = 0
        self.stop_training = False
        self.epoch_complete = True
        self.last_batch = (None, None)
        self.step_stats = {}
        self.train_x = None
        self._has_val = False
        self._validated = {}

    def _prepare(self, data, who):
        x, y = unpack(data, who)
        key = (id(x), id(y), who)
        seen = self._validated.get(key)
        if seen is None or seen[0]() is not x or seen[1]() is not y:  # validate a data set once
            check_data(self.model, self.loss, x, y, who)
            try:
                self._validated[key] = (weakref.ref(x), weakref.ref(y))
            except TypeError:  # arrays that cannot be weakly referenced are checked every time
                pass
        dev = self.model.device
        if backend.device_of(x) != dev or x.dtype != self.model.dtype:
            x = backend.to_device(x, dev, dtype=self.model.dtype)
        if backend.device_of(y) != dev:
            y = backend.to_device(y, dev)
        return x, y

    @property
    def is_root(self) -> bool:
        """True unless this is a rank other than 0 of a data-parallel run (which prints and writes nothing)."""
        return self._comm is None or self._comm.rank == 0

    def _tally(self, skip=False):
        return Tally(self.metrics, self.loss, skip=skip, reduce=None if self._comm is None else self._comm.allreduce_host)

    # ------------------------------------------------------------------ logs
    def _penalty_coefs(self):
        wd = float(getattr(self.optimizer, "weight_decay", 0.0) or 0.0)
        l1 = float(getattr(self.optimizer, "l1", 0.0) or 0.0)
        return wd, l1

    def log_keys(self) -> list[str]:
        """The keys of each epoch's logs in this run (what a monitor may name)."""
        keys = ["loss"] + [m.name for m in self.metrics]
        wd, l1 = self._penalty_coefs()
        keys += (["l2_penalty"] if wd else []) + (["l1_penalty"] if l1 else []) + (["total_loss"] if wd or l1 else [])
        if self._has_val:
            keys += ["val_loss"] + [f"val_{m.name}" for m in self.metrics]
        return keys + ["lr", "time"]

    def penalties(self) -> dict:
        """½λ‖w‖² and μ‖w‖₁ over the weights that take decay (arena range [0, n_decay))."""
        wd, l1 = self._penalty_coefs()
        out = {}
        if wd or l1:
            a = self.model.arena
            w = a.params[: getattr(self.optimizer, "n_decay", a.n_decay)]
            xp = backend.get_array_module(w)
            sq, ab = backend.read_back(xp.stack([xp.dot(w, w), xp.abs(w).sum()]).astype(np.float64)).tolist()
            if wd:
                out["l2_penalty"] = 0.5 * wd * sq
            if l1:
                out["l1_penalty"] = l1 * ab
        return out

    # ------------------------------------------------------------------ fit
    def fit(self, x, y=None, *, val=None, validation_data=None, epochs: int = 1, batch_size: int = 32, resume=None,
            verbose: int = 1, shuffle: bool = True, drop_last: bool = False, val_batch_size: int | None = None,
            validation_split: float | None = None) -> History:
        """Train until ``epochs`` epochs are done in total (a resumed run continues from the
        checkpoint's epoch). Shuffling draws from ``gpunet.backend.rng()`` (``gpunet.seed``).

        The training data: ``fit(x, y)``, or ``fit((x, y))`` / ``fit(dataset)``. Everything after
        them is a keyword. ``val`` (alias ``validation_data``, Keras's name): an (x, y) pair or a
        dataset evaluated after each epoch. ``validation_split``: hold out the last fraction of the
        training data (before shuffling) as the validation set, as Keras does; not with ``val``.
        ``verbose``: 0 silent, 1 a progress bar (one line per epoch when stderr is not a terminal),
        2 one line per epoch. Each epoch's logs hold ``time``, its wall time in seconds (training
        and validation). Epochs are numbered from 1 wherever a person reads them (progress,
        messages, ``History.epochs``, logs, checkpoint names); callback hooks and schedules receive
        the 0-based index.
        """
        who = "Trainer.fit"
        train = training_data(x, y, who)
        if validation_data is not None:
            if val is not None:
                raise ValueError(f"{who}: pass val or validation_data (its alias), not both")
            val = validation_data
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"{who}(epochs): expected a non-negative integer, got {epochs!r}")
        batch_size = check_batch_size(batch_size, who)
        if val_batch_size is not None:
            val_batch_size = check_batch_size(val_batch_size, who, "val_batch_size")
        verbose = check_verbose(verbose, who)
        if self.optimizer is None:
            raise TypeError(f"{who}: this Trainer has no optimizer (optimizer=None serves evaluate and "
                            "predict only); pass one, e.g. gpunet.optim.Adam(model, lr=1e-3)")
        if validation_split is not None:
            if val is not None:
                raise ValueError(f"{who}: pass val (validation_data) or validation_split, not both")
            train, val = split_validation(*unpack(train, f"{who}(train)"), validation_split, who)
        x, y = self._prepare(train, f"{who}(train)")
        xv = yv = None
        if val is not None:
            xv, yv = self._prepare(val, f"{who}(val)")
        comm = self._comm
        if comm is None:
            check_batch_norm_batches(self.model, len(x), batch_size, drop_last, who)
        else:
            parallel.check_shards(comm, len(x), batch_size, drop_last, who)
            if xv is not None:
                parallel.check_evaluation_rows(comm, len(xv), f"{who}(val)")
            check_batch_norm_batches(self.model, len(x), batch_size, drop_last, who,
                                     sizes=parallel.bn_batch_sizes(comm, len(x), batch_size, drop_last))
            if not self.is_root:
                verbose = 0
        if verbose == 1 and not _is_terminal(sys.stderr):
            verbose = 2  # a bar's redrawn states are unreadable in a file: one line per epoch
        self._has_val = val is not None
        self.epochs = int(epochs)
        self.train_x = x  # on the model's device; SWA's batch-norm pass reads it
        self.stop_training = False
        self.history, self.epoch, self.global_step = History(), 0, 0
        self.resumed_from = None
        for cb in self.callbacks:
            cb.reset()
        if resume is not None:
            self.load_checkpoint(resume)
        if comm is not None:
            parallel.common_start(comm, self)
        saved_input_grad = self.model.need_input_grad
        self.model.need_input_grad = False  # the data is not trained: no gradient for the input
        try:
            self._fire("on_train_begin", {"initial_epoch": self.epoch})
            for epoch in range(self.epoch, int(epochs)):
                if self.stop_training:
                    break
                self.current_epoch = epoch
                self._fire("on_epoch_begin", epoch)
                t_epoch = time.perf_counter()
                bar = self._bar(len(x), batch_size, drop_last, epoch, int(epochs), verbose)
                try:
                    logs = train_epoch(self, x, y, batch_size, shuffle, drop_last, epoch, bar)
                    if comm is not None:  # rank-local running statistics: their mean, on every rank
                        parallel.average_buffers(comm, self.model)
                    if xv is not None:
                        self._fire("on_validation_begin", epoch)
                        vlogs = self._evaluate_arrays(xv, yv, val_batch_size or max(batch_size, 256))
                        logs.update({f"val_{k}": v for k, v in vlogs.items()})
                        self._fire("on_validation_end", epoch, logs)
                    logs["lr"] = self._epoch_lr
                    logs["time"] = time.perf_counter() - t_epoch
                    if comm is not None:  # rank 0's logs (its time) on every rank: the same decisions
                        logs = comm.broadcast_object(logs)
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "time"}, refresh=True)
                finally:
                    if bar is not None:
                        bar.close()
                if verbose == 2:
                    items = "  ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "time")
                    print(f"epoch {epoch + 1}/{epochs}  {logs['time']:.1f}s  {items}", file=sys.stderr, flush=True)
                self.history.append(epoch + 1, logs)
                if self.epoch_complete:  # an epoch cut short (TerminateOnNaN) is not done
                    self.epoch = epoch + 1
                self._fire("on_epoch_end", epoch, logs)
            self._fire("on_train_end", self.history.last())
        finally:
            self.train_x = None
            self.model.need_input_grad = saved_input_grad
        return self.history

    def _fire(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    @staticmethod
    def _bar(n, batch_size, drop_last, epoch, epochs, verbose):
        if verbose != 1:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=num_batches(n, batch_size, drop_last), desc=f"epoch {epoch + 1}/{epochs}",
                    unit="batch", leave=True, file=sys.stderr, dynamic_ncols=True)

    def train_step(self, x, y, shard=None):
        """One training step on a batch on the model's device, from a data set the Trainer has
        checked: forward, loss (``forward_trusted``), backward, optimizer step. Returns the loss
        and the model's output as device arrays; reads nothing back (no host synchronization).
        ``fit`` sets ``model.need_input_grad = False`` for its duration (the data is not trained,
        so the first layer skips dx); a step called by hand computes dx unless told the same.

        Data-parallel: ``shard=(start, m)`` says x is rows [start, start + len(x)) of a global
        batch of m rows; dropout then draws those rows of the global batch's masks, and before
        the step the gradients are all-reduced, this rank's weighted by len(x)/m."""
        comm = self._comm
        if comm is None:
            out = self.model(x)
        else:
            start, m = shard if shard is not None else (0, len(x))
            with batch_offset(start):
                out = self.model(x)
        value = _trusted_forward(self.loss)(out, y)
        self.model.backward(self.loss.backward())
        if comm is not None:
            comm.allreduce_gradients(self.model, weight=len(x) / m)
        self.optimizer.step()
        return value, out

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_arrays(self, x, y, batch_size):
        model = self.model
        was_training = model.training
        model.eval()
        x, y = parallel.evaluation_rows(self._comm, x, y)
        tally = self._tally()
        try:
            for xb, yb in batches(x, y, batch_size, shuffle=False, device=model.device):
                out = model(xb)
                tally.add(_trusted_forward(self.loss)(out, yb), out, yb)
        finally:
            model.train(was_training)
        return tally.read()[0]

    def evaluate(self, x, y=None, *, batch_size: int = 256) -> dict:
        """Loss and metrics over ``x, y`` (or an (x, y) pair or dataset) in eval mode, e.g.
        {"loss": 0.07, "accuracy": 0.981}."""
        batch_size = check_batch_size(batch_size, "Trainer.evaluate")
        x, y = self._prepare(training_data(x, y, "Trainer.evaluate"), "Trainer.evaluate(data)")
        return self._evaluate_arrays(x, y, batch_size)

    def predict(self, x, batch_size: int = 256):
        """The model's outputs for ``x`` (eval mode), concatenated on the model's device."""
        if hasattr(x, "x") and hasattr(x, "y"):
            x = x.x
        batch_size = check_batch_size(batch_size, "Trainer.predict")
        if not backend.is_array(x):
            raise TypeError(f"Trainer.predict(x): expected a NumPy or CuPy array of shape (N, ...), got "
                            f"{backend.describe_non_array(x)}")
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(f"Trainer.predict(x): expected an array of shape (N, ...) with N > 0, got "
                             f"shape {tuple(x.shape)}")
        model = self.model
        x = backend.to_device(x, model.device, dtype=model.dtype)
        xp = backend.get_array_module(x)
        was_training = model.training
        model.eval()
        try:
            outs = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            model.train(was_training)
        return xp.concatenate(outs, axis=0)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything a resumed run needs (see ``checkpoint.trainer_state``)."""
        return ckpt.trainer_state(self)

    def save_checkpoint(self, path) -> None:
        """Write ``state_dict()`` to ``path`` atomically (see ``gpunet.train.checkpoint``). In a
        data-parallel run rank 0 writes and every rank waits for it (call it on every rank)."""
        if self.is_root:
            ckpt.save(path, self.state_dict())
        if self._comm is not None:
            self._comm.barrier()

    def load_checkpoint(self, path) -> dict:
        """Restore a checkpoint written by ``save_checkpoint`` (on either device)."""
        state = ckpt.restore_trainer(self, ckpt.load(path), name=f"checkpoint {str(path)!r}")
        self.resumed_from = os.path.abspath(os.fspath(path))
        return state
