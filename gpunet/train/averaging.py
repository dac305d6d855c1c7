"""Model averaging: ensembles of models, an exponential moving average of the weights (EMA) and
stochastic weight averaging (SWA).

- ``Ensemble(models)``: p(y|x) = Σᵢ wᵢ softmax(zᵢ(x)) (weights wᵢ default 1/M); its forward
  returns log p, so cross-entropy and argmax apply to it as to logits.
- ``EMA(decay)``: after every optimizer step, w̄ ← β w̄ + (1 − β) w over the whole flat arena in
  one fused update (``gpunet.ops.ema``). Validation runs on w̄ (``eval_with_ema``), and the model
  ends training with w̄ (``apply_at_end``).
- ``SWA(start_epoch)``: after ``start_epoch`` epochs, at the end of every ``freq``-th epoch,
  w_swa ← w_swa + (w − w_swa)/(n + 1), n ← n + 1 (the running mean of those epochs' weights). At
  the end of training the model takes w_swa, and batch-norm running statistics are recomputed
  with one pass over the training data (``update_bn``), as the average of the per-batch
  statistics under the averaged weights.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np

from .. import backend
from ..layers.base import Layer
from .callback import Callback

__all__ = ["Ensemble", "EMA", "SWA", "update_bn"]


class Ensemble(Layer):
    """Average the predicted probabilities of ``models`` (optionally with ``weights``).

    forward(x) = log Σᵢ wᵢ softmax(zᵢ), computed as a log-sum-exp over the models' log-softmax
    outputs; ``predict_proba(x)`` gives the probabilities. Not trainable as one model.
    """

    def __init__(self, models, weights=None):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("Ensemble: needs at least one model")
        for i, m in enumerate(models):
            if not isinstance(m, Layer):
                raise TypeError(f"Ensemble: model {i} is a {type(m).__name__}, not a gpunet Layer")
            self.add_child(str(i), m)
        if weights is None:
            weights = [1.0] * len(models)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(models),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"Ensemble: weights must be {len(models)} non-negative numbers with a positive "
                             f"sum, got {weights!r}")
        self.weights = w / w.sum()

    def forward(self, x):
        logs = []
        for m, w in zip(self._children.values(), self.weights):
            z = m(x)
            if z.ndim != 2:
                raise ValueError(f"Ensemble: each model must output (N, classes) scores, got {tuple(z.shape)}")
            xp = backend.get_array_module(z)
            zmax = z.max(axis=1, keepdims=True)
            ls = z - zmax - xp.log(xp.exp(z - zmax).sum(axis=1, keepdims=True))
            logs.append(ls + (math.log(w) if w > 0 else -np.inf))
        shapes = {tuple(a.shape) for a in logs}
        if len(shapes) > 1:
            raise ValueError(f"Ensemble: the models' outputs differ in shape: {sorted(shapes)}")
        xp = backend.get_array_module(logs[0])
        stack = xp.stack(logs)
        top = stack.max(axis=0)
        return top + xp.log(xp.exp(stack - top).sum(axis=0))

    def predict_proba(self, x):
        return backend.get_array_module(x).exp(self.forward(x))

    def backward(self, dy):
        raise NotImplementedError("Ensemble: an ensemble is evaluated, not trained; train its members")

    def extra_repr(self):
        return f"{len(self._children)} models"


def _ema_update(shadow, params, decay):
    """w̄ ← β w̄ + (1 − β) w, in place: one fused pass over the arena (gpunet.ops.ema)."""
    from ..ops.ema import ema_update

    ema_update(shadow, params, decay)


class EMA(Callback):
    """Exponential moving average of the weights: w̄ ← β w̄ + (1 − β) w after every step.

    Where the average starts (``start``): "initial" (default) — w̄₀ is the weights before the
    first step, so w̄ after step k is βᵏ w₀ + (1 − β) Σ βᵏ⁻ⁱ wᵢ (timm's ModelEmaV2); "first_step" —
    the first update sets w̄ = w₁, the weights after the first step, and averaging starts from
    there (PyTorch's ``AveragedModel`` with an EMA function: its first update copies).
    ``warmup``: use β_t = min(β, (1 + t)/(10 + t)) for the t-th update (so early averages do not
    lean on the initial weights). ``eval_with_ema``: validation sees w̄. ``apply_at_end``: the
    model keeps w̄ after training. Without a Trainer: ``EMA(β, model=m)``, then ``update()`` after
    each step and ``with ema.swapped(): ...`` to evaluate w̄, or ``copy_to()``. Note that other
    callbacks' end-of-epoch snapshots (early stopping, checkpoints) hold the live weights.
    """

    order = 10

    def __init__(self, decay: float = 0.999, warmup: bool = False, eval_with_ema: bool = True,
                 apply_at_end: bool = True, model=None, start: str = "initial"):
        if not (isinstance(decay, (int, float)) and 0 <= decay < 1):
            raise ValueError(f"EMA: decay must lie in [0, 1), got {decay!r}")
        if start not in ("initial", "first_step"):
            raise ValueError(f"EMA: start must be 'initial' (the weights before the first step) or 'first_step' "
                             f"(the weights after it), got {start!r}")
        self.decay, self.warmup, self.start = float(decay), bool(warmup), start
        self.eval_with_ema, self.apply_at_end = bool(eval_with_ema), bool(apply_at_end)
        self._model = model
        self.shadow, self.num_updates, self._backup = None, 0, None
        if model is not None:
            self.shadow = model.arena.params.copy()

    @property
    def model(self):
        return self._model if self._model is not None else self.trainer.model

    def reset(self):
        self.shadow, self.num_updates, self._backup = None, 0, None

    def on_train_begin(self, logs=None):
        if self.shadow is None or self.shadow.shape != self.model.arena.params.shape \
                or backend.device_of(self.shadow) != self.model.arena.device:
            self.shadow = self.model.arena.params.copy()

    def current_decay(self) -> float:
        if self.warmup:
            t = self.num_updates
            return min(self.decay, (1.0 + t) / (10.0 + t))
        return self.decay

    def update(self) -> None:
        params = self.model.arena.params
        if self.shadow is None:
            self.shadow = params.copy()
        if self.start == "first_step" and self.num_updates == 0:
            self.shadow[...] = params
        else:
            _ema_update(self.shadow, params, self.current_decay())
        self.num_updates += 1

    def on_batch_end(self, step, logs=None):
        self.update()

    @contextlib.contextmanager
    def swapped(self):
        """The model holds w̄ inside the block and its own weights again after it."""
        params = self.model.arena.params
        backup = params.copy()
        params[...] = self.shadow
        try:
            yield self.model
        finally:
            params[...] = backup

    def on_validation_begin(self, epoch):
        if self.eval_with_ema:
            params = self.model.arena.params
            self._backup = params.copy()
            params[...] = self.shadow

    def on_validation_end(self, epoch, logs):
        if self._backup is not None:
            self.model.arena.params[...] = self._backup
            self._backup = None

    def copy_to(self, model=None) -> None:
        """Write w̄ into the model's parameters."""
        (model or self.model).arena.params[...] = self.shadow

    def on_train_end(self, logs=None):
        if self.apply_at_end and self.shadow is not None:
            self.copy_to()

    def state_dict(self):
        return {"shadow": self.shadow, "num_updates": self.num_updates}

    def load_state_dict(self, state):
        s = state["shadow"]
        self.shadow = None if s is None else backend.to_device(s, self.model.arena.device, dtype=self.model.arena.dtype)
        self.num_updates = int(state["num_updates"])

    def __repr__(self):
        return f"EMA(decay={self.decay:g}, warmup={self.warmup}, start={self.start!r})"


def _batchnorm_layers(model):
    """The batch norms whose running statistics training updates (not those frozen in eval mode)."""
    return [layer for _, layer in model.named_layers()
            if "running_mean" in layer._buffers and "running_var" in layer._buffers and hasattr(layer, "momentum")
            and not layer._frozen_eval]


def update_bn(model, x, batch_size: int = 256) -> int:
    """Recompute batch-norm running statistics: reset them, then run ``x`` forward in train mode
    with momentum 1/k for the k-th batch, so each running value ends as the mean of the per-batch
    values (PyTorch's ``update_bn``). Layers' random state and modes are restored; a batch norm
    frozen in eval mode (``freeze()``) keeps its statistics. Returns the number of batch-norm
    layers updated."""
    bns = _batchnorm_layers(model)
    if not bns:
        return 0
    rng = {n: layer.get_rng_state() for n, layer in model.named_layers()}
    modes = {n: layer.training for n, layer in model.named_layers()}
    momenta = [bn.momentum for bn in bns]
    x = backend.to_device(x, model.device, dtype=model.dtype)
    try:
        for bn in bns:
            bn.running_mean[...] = 0
            bn.running_var[...] = 1
            if "num_batches_tracked" in bn._buffers:
                bn.num_batches_tracked[...] = 0
        model.train()
        for k, i in enumerate(range(0, len(x), batch_size), start=1):
            for bn in bns:
                bn.momentum = 1.0 / k
            model(x[i:i + batch_size])
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        for n, layer in model.named_layers():
            if rng[n] is not None:
                layer.set_rng_state(rng[n])
            layer.training = modes[n]
    return len(bns)


class SWA(Callback):
    """Stochastic weight averaging (Izmailov et al., 2018).

    After ``start_epoch`` epochs (a count: with ``start_epoch=10`` the first averaged epoch is
    epoch 11, as the progress lines number it, and the first of every ``freq``):
    w_swa ← w_swa + (w − w_swa)/(n+1) at the end of each averaged epoch.
    ``swa_lr``: a constant learning rate for the averaged epochs (None: leave the rate alone).
    A run too short to average anything says so, at its start and at its end.
    At the end of training the model takes w_swa and, with ``update_bn``, its batch-norm
    statistics are recomputed over the training data.
    """

    order = 20

    def __init__(self, start_epoch: int = 0, freq: int = 1, swa_lr: float | None = None,
                 update_bn: bool = True, bn_batch_size: int = 256):
        if int(start_epoch) != start_epoch or start_epoch < 0:
            raise ValueError(f"SWA: start_epoch must be an integer >= 0, got {start_epoch!r}")
        if int(freq) != freq or freq < 1:
            raise ValueError(f"SWA: freq must be a positive integer, got {freq!r}")
        self.start_epoch, self.freq, self.swa_lr = int(start_epoch), int(freq), swa_lr
        self.update_bn, self.bn_batch_size = bool(update_bn), int(bn_batch_size)
        self.reset()

    def reset(self):
        self.average, self.n_averaged = None, 0

    def on_train_begin(self, logs=None):
        epochs = getattr(self.trainer, "epochs", None)
        if epochs is not None and self.start_epoch >= epochs:
            warnings.warn(f"SWA: start_epoch={self.start_epoch} but fit runs {epochs} epochs, so no epoch "
                          f"will be averaged (the first averaged epoch would be epoch {self.start_epoch + 1})",
                          RuntimeWarning, stacklevel=4)

    def on_epoch_begin(self, epoch, logs=None):
        if self.swa_lr is not None and epoch >= self.start_epoch:
            self.trainer.optimizer.lr = self.swa_lr

    def on_epoch_end(self, epoch, logs):
        if epoch < self.start_epoch or (epoch - self.start_epoch) % self.freq:
            return
        params = self.trainer.model.arena.params
        if self.average is None or self.n_averaged == 0:
            self.average = params.copy()
        else:
            self.average += (params - self.average) / params.dtype.type(self.n_averaged + 1)
        self.n_averaged += 1

    def on_train_end(self, logs=None):
        if self.n_averaged == 0:
            warnings.warn(f"SWA: no epoch was averaged (start_epoch={self.start_epoch}, training ended after "
                          f"epoch {self.trainer.epoch}); the model keeps its last weights",
                          RuntimeWarning, stacklevel=4)
            return
        model = self.trainer.model
        model.arena.params[...] = self.average
        if self.update_bn:
            x = getattr(self.trainer, "train_x", None)
            if x is not None:
                update_bn(model, x, self.bn_batch_size)

    def state_dict(self):
        return {"average": self.average, "n_averaged": self.n_averaged}

    def load_state_dict(self, state):
        a = state["average"]
        arena = self.trainer.model.arena
        self.average = None if a is None else backend.to_device(a, arena.device, dtype=arena.dtype)
        self.n_averaged = int(state["n_averaged"])
