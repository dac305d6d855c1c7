"""Training: the Trainer, callbacks, checkpoints and model averaging."""
from . import atomic, callbacks, checkpoint
from .averaging import EMA, SWA, Ensemble
from .callback import Callback
from .callbacks import CSVLogger, EarlyStopping, LRScheduler, ModelCheckpoint
from .checkpoint import CheckpointError
from .diagnostics import Diagnostics
from .history import History
from .terminate import NonFiniteLossError, TerminateOnNaN
from .trainer import Trainer

__all__ = ["Trainer", "History", "atomic", "callbacks", "checkpoint", "Callback", "EarlyStopping",
           "ModelCheckpoint", "LRScheduler", "CSVLogger", "TerminateOnNaN", "NonFiniteLossError",
           "CheckpointError", "Ensemble", "EMA", "SWA", "Diagnostics"]
