"""TerminateOnNaN: stop at the first non-finite loss or weight, and find where it came from."""
from __future__ import annotations

import math
import warnings

from .callback import Callback

__all__ = ["TerminateOnNaN", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss; ``report`` says where it came from."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


def _copy_tree(tree):
    if hasattr(tree, "shape") and hasattr(tree, "copy"):
        return tree.copy()
    if isinstance(tree, dict):
        return {k: _copy_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_copy_tree(v) for v in tree)
    return tree


class TerminateOnNaN(Callback):
    """Stop training when the running training loss or the weights become NaN or ±inf, and say
    where it came from.

    The Trainer reads the running loss back every ``sync_every`` batches and at the end of each
    epoch. At each finite read-back this callback keeps a device copy of the model's parameters
    and buffers, the optimizer's state and the layers' random state (a copy per ``sync_every``
    steps, no host transfer) and references to the batches since. When a read-back is not
    finite, it restores that copy and replays the steps one by one under watch
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
        self._snap, self._steps = None, []

    def _snapshot(self):
        t = self.trainer
        m = t.model
        self._snap = {
            "params": m.arena.params.copy(),
            "buffers": {k: v.copy() for k, v in m.buffers()},
            "rng": {n: layer.get_rng_state() for n, layer in m.named_layers()},
            "optimizer": _copy_tree(t.optimizer.state_dict()),
            "step": t.global_step,
        }
        self._steps = []

    def _restore(self):
        t, snap = self.trainer, self._snap
        m = t.model
        m.arena.params[...] = snap["params"]
        if snap["buffers"]:
            m.load_state_dict(snap["buffers"], strict=False)
        for n, layer in m.named_layers():
            if snap["rng"].get(n) is not None:
                layer.set_rng_state(snap["rng"][n])
        t.optimizer.load_state_dict(_copy_tree(snap["optimizer"]))

    def on_epoch_begin(self, epoch, logs=None):
        if self.locate and self._snap is None:
            self._snapshot()

    def on_batch_end(self, step, logs=None):
        if self.locate:
            x, y = self.trainer.last_batch
            self._steps.append((x, y, self.trainer.optimizer.lr))

    def on_readback(self, step, logs):
        value = logs.get("loss", 0.0)
        params = self.trainer.model.arena.params
        # min and max propagate NaN and show ±inf: a finite pair means finite weights
        healthy = math.isfinite(value) and math.isfinite(float(params.min())) and math.isfinite(float(params.max()))
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
        what = f"the training loss is {value}" if not math.isfinite(value) else "the weights hold non-finite values"
        msg = f"TerminateOnNaN: {what} at step {step}; stopping. Origin: {report}"
        if self.raise_error:
            raise NonFiniteLossError(msg, report)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)

    def on_train_end(self, logs=None):
        self._snap, self._steps = None, []
