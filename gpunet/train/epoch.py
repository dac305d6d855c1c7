"""One training epoch of the Trainer: the batches, the callbacks' batch hooks, the read-backs and
the epoch's logs.

The per-batch loss and metric values stay on the device in a ``Tally``; they are read back, with
the optimizer's step statistics in the same copy, every ``sync_every`` batches when a callback
(``on_readback``) or the progress bar asks for them, and once at the end of the epoch. Read-backs
are decided by batch count, never by the clock, so every rank of a data-parallel run reads back
(and reduces) at the same batch.
"""
from __future__ import annotations

import math
import warnings

from ..data.batching import num_batches
from . import parallel
from .callback import Callback
from .terminate import TerminateOnNaN


def _overrides(cb, hook: str) -> bool:
    return getattr(type(cb), hook) is not getattr(Callback, hook)


def read_logs(trainer, tally) -> dict:
    """The running logs and the optimizer's step statistics (into ``trainer.step_stats``), in one read-back."""
    stats = getattr(trainer.optimizer, "stats", None)
    logs, host = tally.read(None if stats is None else stats.buffer)
    if host is not None:
        trainer.step_stats = dict(zip(stats.FIELDS, host.tolist()))
    return logs


def train_epoch(trainer, x, y, batch_size, shuffle, drop_last, epoch, bar) -> dict:
    """Train one epoch over ``x, y``; returns its logs (loss, metrics, penalties; ``skipped``
    where the optimizer skipped non-finite steps)."""
    model, opt = trainer.model, trainer.optimizer
    n_batches = num_batches(len(x), batch_size, drop_last)
    begin = [cb for cb in trainer.callbacks if _overrides(cb, "on_batch_begin")]
    end = [cb for cb in trainer.callbacks if _overrides(cb, "on_batch_end")]
    readers = [cb for cb in trainer.callbacks if _overrides(cb, "on_readback")]
    read_every = trainer.sync_every if readers or bar is not None else 0
    tally = trainer._tally(skip=getattr(opt, "nonfinite", None) == "skip")
    trainer._epoch_lr = None
    done = read_at = 0
    logs = {}
    model.train()
    for xb, yb, shard in parallel.epoch_batches(trainer._comm, x, y, batch_size, shuffle, drop_last, model.device):
        step = trainer.global_step
        for cb in begin:
            cb.on_batch_begin(step)
        if trainer._epoch_lr is None:  # the epoch's rate: the first batch's, after its hooks
            trainer._epoch_lr = float(opt.lr)
        value, logits = trainer.train_step(xb, yb, shard)
        tally.add(value, logits, yb)  # device arrays: kept, not copied nor read
        done += 1
        trainer.global_step += 1
        trainer.last_batch = (xb, yb)
        for cb in end:
            cb.on_batch_end(step, {"x": xb, "y": yb})
        if read_every and done % read_every == 0:
            logs = read_logs(trainer, tally)
            read_at = done
            if bar is not None:
                bar.update(done - bar.n)
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "skipped"}, refresh=False)
            for cb in readers:
                cb.on_readback(trainer.global_step, logs)
            if trainer.stop_training:
                break
    if trainer._epoch_lr is None:
        trainer._epoch_lr = float(opt.lr)
    trainer.epoch_complete = done == n_batches
    if read_at != done or not logs:
        logs = read_logs(trainer, tally)
        for cb in readers:
            cb.on_readback(trainer.global_step, logs)
    if bar is not None:
        bar.update(done - bar.n)
    if logs.get("skipped"):
        warnings.warn(f"Trainer: {int(logs['skipped'])} batches of epoch {epoch + 1} had a non-finite loss; the "
                      "optimizer skipped their steps and the epoch's loss leaves them out", RuntimeWarning,
                      stacklevel=3)
    else:
        logs.pop("skipped", None)
    pen = trainer.penalties()
    if pen:
        logs.update(pen)
        logs["total_loss"] = logs["loss"] + sum(pen.values())
    if not math.isfinite(logs["loss"]) and not any(isinstance(cb, TerminateOnNaN) for cb in trainer.callbacks):
        from ..diagnostics import locate_nonfinite

        warnings.warn(f"Trainer: the training loss of epoch {epoch + 1} is {logs['loss']}; origin: "
                      f"{locate_nonfinite(model, trainer.loss, *trainer.last_batch)}. Add "
                      "gpunet.callbacks.TerminateOnNaN() to stop at the first non-finite loss.",
                      RuntimeWarning, stacklevel=3)
    return logs
