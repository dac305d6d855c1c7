"""Optimizers over the flat parameter arena: one fused update per step, with clipping by global
norm or value, coupled/decoupled weight decay, L1 and a non-finite guard (see ``Optimizer``)."""
from ..ops.ema import ema_update
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .base import Optimizer
from .clip import clip_grad_norm
from .rule import Adadelta, RuleOptimizer, update_rule
from .sgd import SGD, NormalizedSGD
from . import schedules  # noqa: E402

_NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
          "adadelta": Adadelta, "normalized_sgd": NormalizedSGD}


def get(spec, model) -> Optimizer:
    """An optimizer for ``model``: ``spec`` a name ("sgd", "adam", "adamw", "rmsprop", "adagrad",
    "adadelta", "normalized_sgd": that optimizer with its default hyper-parameters, PyTorch's) or an
    optimizer instance (returned as it is)."""
    if isinstance(spec, str):
        cls = _NAMES.get(spec.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {spec!r}; expected a gpunet optimizer or one of {sorted(_NAMES)}")
        return cls(model)
    if isinstance(spec, type):
        raise TypeError(f"expected an optimizer instance, got the class {spec.__name__} (pass "
                        f"{spec.__name__}(model, lr=...) or the name {spec.__name__.lower()!r})")
    if not isinstance(spec, Optimizer):
        raise TypeError(f"expected a gpunet optimizer built for the model, such as gpunet.optim.Adam(model, "
                        f"lr=1e-3), or an optimizer name, got a {type(spec).__name__}")
    return spec


ema = ema_update  # ema ← d·ema + (1 − d)·w over a flat buffer (gpunet.optim.ema(ema, params, decay))

__all__ = ["get", "update_rule", "RuleOptimizer", "Adadelta", "Optimizer", "SGD", "NormalizedSGD", "Adagrad", "RMSprop", "Adam", "AdamW", "clip_grad_norm",
           "ema_update", "ema"]
