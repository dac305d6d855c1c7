"""Optimizers over the flat parameter arena: one fused update per step, with clipping by global
norm or value, coupled/decoupled weight decay, L1 and a non-finite guard (see ``Optimizer``)."""
from ..ops.ema import ema_update
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .base import Optimizer
from .clip import clip_grad_norm
from .sgd import SGD, NormalizedSGD
from . import schedules  # noqa: E402

ema = ema_update  # ema ← d·ema + (1 − d)·w over a flat buffer (gpunet.optim.ema(ema, params, decay))

__all__ = ["Optimizer", "SGD", "NormalizedSGD", "Adagrad", "RMSprop", "Adam", "AdamW", "clip_grad_norm",
           "ema_update", "ema"]
