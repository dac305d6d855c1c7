"""TerminateOnNaN: stop at the first non-finite loss or weight, and find where it came from."""
from __future__ import annotations

import math
import warnings

from .. import backend
from .callback import Callback

__all__ = ["TerminateOnNaN", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss; ``report`` says where it came from."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class TerminateOnNaN(Callback):
    """Stop training when the running training loss or the weights become NaN or ±inf, and say
    where it came from.

    The Trainer reads the running loss back every ``sync_every`` batches and at the end of each
    epoch, together with the optimizer's step statistics. The weights are known finite without
    reading them: under the optimizer's default policy (nonfinite="skip") a non-finite gradient is
    never applied; under "ignore" this callback has the optimizer count, on the device, the
    steps that applied one (``StepStats.nonfinite_seen``), and a count that grew means
    non-finite weights. At each healthy read-back it copies, on the device and into the same
    buffers each time, the model's parameters and buffers, the optimizer's state and statistics,
    and keeps the layers' random state and references to the batches since. When a read-back is
    not healthy, it restores that copy and replays the steps one by one under watch
    (``gpunet.diagnostics.trace_nonfinite``) to find the first step and layer that produced a
    non-finite activation, loss, gradient or parameter update. The report goes to
    ``self.report`` and a warning (``raise_error=True``: ``NonFiniteLossError``), training
    stops, and the model is left with the last finite weights, those just before that step's
    update. ``locate=False`` skips the copies and the replay.
    """

    def __init__(self, raise_error: bool = False, locate: bool = True):
        self.raise_error, self.locate = bool(raise_error), bool(locate)
        self.reset()

    def reset(self):
        self.report = None
        self._snap, self._steps, self._buffers = None, [], None
        self._seen = 0.0

    def on_train_begin(self, logs=None):
        opt = self.trainer.optimizer
        self._counting = getattr(opt, "nonfinite", None) == "ignore" and hasattr(opt, "stats")
        if self._counting:
            self._was_counting, opt.count_nonfinite = opt.count_nonfinite, True
            self._seen = float(backend.read_back(opt.stats.nonfinite_seen)[0])

    def _snapshot(self):
        """Device copies into the previous snapshot's buffers (no allocation after the first, no
        host sync)."""
        t = self.trainer
        m = t.model
        old = self._snap or {}
        if self._buffers is None:
            self._buffers = m.buffers()
        if not old:
            old = {"params": m.arena.params.copy(), "buffers": [v.copy() for v in self._buffers]}
        else:
            old["params"][...] = m.arena.params
            for dst, src in zip(old["buffers"], self._buffers):
                dst[...] = src
        old["rng"] = {n: layer.get_rng_state() for n, layer in m.named_layers()}
        old["optimizer"] = t.optimizer.snapshot(old.get("optimizer"))
        old["step"] = t.global_step
        self._snap, self._steps = old, []

    def _restore(self):
        t, snap = self.trainer, self._snap
        m = t.model
        m.arena.params[...] = snap["params"]
        for dst, src in zip(self._buffers, snap["buffers"]):
            dst[...] = src
        for n, layer in m.named_layers():
            if snap["rng"].get(n) is not None:
                layer.set_rng_state(snap["rng"][n])
        t.optimizer.restore(snap["optimizer"])

    def on_epoch_begin(self, epoch, logs=None):
        if self.locate and self._snap is None:
            self._snapshot()

    def on_batch_end(self, step, logs=None):
        if self.locate:
            self._steps.append((logs["x"], logs["y"], self.trainer.optimizer.lr))

    def on_readback(self, step, logs):
        value = logs.get("loss", 0.0)
        seen = self.trainer.step_stats.get("nonfinite_seen", 0.0) if self._counting else 0.0
        weights_ok = seen == self._seen  # no non-finite gradient applied since the last read-back
        healthy = math.isfinite(value) and weights_ok
        if healthy:
            if self.locate:
                self._snapshot()
            return
        if self.report is not None:
            return
        t = self.trainer
        t.stop_training = True
        if self.locate and self._snap is not None:
            from ..diagnostics import trace_nonfinite

            self._restore()
            report = trace_nonfinite(t.model, t.loss, t.optimizer, self._steps, self._snap["step"])
        else:
            report = "not located (locate=False)"
        self.report = report
        self._snap, self._steps = None, []
        self._seen = seen
        what = f"the training loss is {value}" if not math.isfinite(value) else (
            "a non-finite gradient was applied: the weights hold non-finite values")
        msg = f"TerminateOnNaN: {what} at step {step}; stopping. Origin: {report}"
        if self.raise_error:
            raise NonFiniteLossError(msg, report)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)

    def on_train_end(self, logs=None):
        self._snap, self._steps, self._buffers = None, [], None
        if getattr(self, "_counting", False):
            self.trainer.optimizer.count_nonfinite = self._was_counting
