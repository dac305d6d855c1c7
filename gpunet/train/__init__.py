"""Training: the Trainer, callbacks, checkpoints and model averaging."""
from . import atomic, callbacks, checkpoint
from .averaging import EMA, SWA, Ensemble
from .callbacks import (Callback, CSVLogger, EarlyStopping, LRScheduler, ModelCheckpoint,
                        NonFiniteLossError, TerminateOnNaN)
from .checkpoint import CheckpointError
from .history import History
from .trainer import Trainer

__all__ = ["Trainer", "History", "atomic", "callbacks", "checkpoint", "Callback", "EarlyStopping",
           "ModelCheckpoint", "LRScheduler", "CSVLogger", "TerminateOnNaN", "NonFiniteLossError",
           "CheckpointError", "Ensemble", "EMA", "SWA"]
