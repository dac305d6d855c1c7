"""Adaptive-rate optimizers over the arena: Adagrad, RMSprop, Adam and AdamW (PyTorch's names,
arguments and defaults; formulas in kernels/optim_update/reference.py)."""
from __future__ import annotations

import math

from .base import Optimizer, check_number
from .rule import RuleSpec


def _check_betas(betas, who):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    return (check_number(b1, "betas[0]", who, lo=0.0, hi=1.0, hi_open=True),
            check_number(b2, "betas[1]", who, lo=0.0, hi=1.0, hi_open=True))


class Adagrad(Optimizer):
    """a ← a + g²;  w ← w − η_t g/(√a + ε),  η_t = η/(1 + (t − 1)·lr_decay); a starts at
    ``initial_accumulator_value``."""

    rule = "adagrad"

    def __init__(self, model, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 **kwargs):
        super().__init__(model, lr, weight_decay=weight_decay, **kwargs)
        who = type(self).__name__
        self.hyper.update(
            lr_decay=check_number(lr_decay, "lr_decay", who, lo=0.0),
            initial_accumulator_value=check_number(initial_accumulator_value, "initial_accumulator_value", who,
                                                   lo=0.0),
            eps=check_number(eps, "eps", who, lo=0.0, lo_open=True))
        self._add_state("sum", self.hyper["initial_accumulator_value"])


class RMSprop(Optimizer):
    """q ← αq + (1 − α)g²; d = √q + ε (``centered``: ḡ ← αḡ + (1 − α)g, d = √(q − ḡ²) + ε);
    w ← w − ηg/d, or with ``momentum`` μ > 0: v ← μv − ηg/d, w ← w + v (the velocity form of
    SGD; the buffer is ``velocity``)."""

    rule = "rmsprop"

    def __init__(self, model, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 **kwargs):
        super().__init__(model, lr, weight_decay=weight_decay, **kwargs)
        who = type(self).__name__
        self.hyper.update(alpha=check_number(alpha, "alpha", who, lo=0.0, hi=1.0),
                          eps=check_number(eps, "eps", who, lo=0.0, lo_open=True),
                          momentum=check_number(momentum, "momentum", who, lo=0.0),
                          centered=bool(centered))
        self._add_state("square_avg")
        if self.hyper["centered"]:
            self._add_state("grad_avg")
        if self.hyper["momentum"] > 0:
            self._add_state("velocity")

    def _states(self):
        sq = self.state["square_avg"]  # stands in for the buffers a variant does not use (never touched)
        return sq, self.state.get("grad_avg", sq), self.state.get("velocity", sq)


def _amsgrad(w, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, t, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam's step with AMSGrad's maximum (PyTorch's amsgrad=True): v̂ ← max(v̂, v) and v̂ in the
    denominator."""
    exp_avg = beta1 * exp_avg + (1 - beta1) * g
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
    if exp_avg_sq > max_exp_avg_sq:
        max_exp_avg_sq = exp_avg_sq
    step = lr / (1 - beta1 ** t)
    return (w - step * exp_avg / (math.sqrt(max_exp_avg_sq) / math.sqrt(1 - beta2 ** t) + eps), exp_avg, exp_avg_sq,
            max_exp_avg_sq)


AMSGRAD = RuleSpec(_amsgrad, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), "AMSGrad")


class Adam(Optimizer):
    """m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  w ← w − (η/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε),
    bias corrections computed in the kernel from the device step count t. ``weight_decay`` is
    coupled (g ← g + λw) unless ``decoupled_weight_decay=True`` (w ← w − ηλw, as AdamW).
    ``amsgrad=True`` (Reddi et al.; PyTorch's): v̂ ← max(v̂, v), and v̂ replaces v in the step —
    still one fused pass, the rule compiled by Numba (``gpunet.optim.update_rule``'s machinery:
    numba_cpu, or numba_cuda on a GPU), with the extra state buffer ``max_exp_avg_sq``."""

    rule = "adam"

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, amsgrad=False, **kwargs):
        super().__init__(model, lr, weight_decay=weight_decay, **kwargs)
        who = type(self).__name__
        self.hyper.update(betas=_check_betas(betas, who), eps=check_number(eps, "eps", who, lo=0.0, lo_open=True),
                          decoupled_weight_decay=bool(decoupled_weight_decay), amsgrad=bool(amsgrad))
        self._add_state("exp_avg")
        self._add_state("exp_avg_sq")
        if self.hyper["amsgrad"]:
            self._add_state("max_exp_avg_sq")

    def step(self) -> None:
        if not self.hyper["amsgrad"]:
            return super().step()
        b1, b2 = self.hyper["betas"]
        self._rule_step(AMSGRAD, beta1=b1, beta2=b2, eps=self.hyper["eps"])

    def _decay_args(self):
        if self.hyper["decoupled_weight_decay"]:
            return {"weight_decay": 0.0, "l1": self.l1, "decoupled_wd": self.weight_decay}
        return super()._decay_args()


class AdamW(Adam):
    """Adam with decoupled weight decay: w ← w − ηλw, then the Adam step (λ = ``weight_decay``,
    default 0.01 as in PyTorch)."""

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, **kwargs):
        kwargs.pop("decoupled_weight_decay", None)
        kwargs["amsgrad"] = amsgrad
        super().__init__(model, lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled_weight_decay=True,
                         **kwargs)
