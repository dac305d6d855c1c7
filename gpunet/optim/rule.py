"""Update rules written by users: an element-wise function that gpunet turns into an optimizer.

    @gn.optim.update_rule(state=("square_avg", "acc_delta"))
    def Adadelta(w, g, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6):
        square_avg = rho * square_avg + (1 - rho) * g * g
        delta = math.sqrt(acc_delta + eps) / math.sqrt(square_avg + eps) * g
        acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        return w - lr * delta, square_avg, acc_delta

    opt = Adadelta(model, lr=1.0, clip_norm=1.0, weight_decay=1e-4)

The function receives one element of the parameters ``w``, of the gradient ``g`` and of each
state buffer, then ``lr``, optionally ``t`` (the step count, this step included, for bias
corrections), and its hyper-parameters, whose defaults are the optimizer's; it returns the new
``w`` and the new state values (just ``w`` without state). It is plain scalar Python (``math``,
arithmetic, ``if``): gpunet compiles it with Numba into the loop of the built-in rules — on the
CPU with ``numba.njit`` (parallel), on a GPU with ``numba.cuda.jit`` (a device function inside a
generated grid-stride kernel; the CUDA C tier cannot compile Python). Either way the optimizer
keeps everything the built-in ones have: clipping by global norm and by value, coupled weight
decay and L1 on the decay range (``decay_all``), the non-finite guard (skip / raise / ignore),
the step statistics, state dicts and checkpoints.

Compilation happens at the first step (about a second on a CPU). On a GPU the kernel reads the
skip flag, the norm and the step count from device memory (no host sync) and launches on Numba's
default stream, the legacy null stream, which is also CuPy's default: the order of the step's
launches holds. A CUDA graph captured on another stream would not contain the launch (capture
needs the kernel on the capturing stream, and compiled before: take one step first); none of this
has run on a GPU yet (docs/gpu-results.md).
"""
from __future__ import annotations

import inspect
import math

from .base import Optimizer, check_number

# names the generated loops use themselves
RESERVED = {"w", "g", "i", "wi", "gi", "r", "s", "cv", "do_clip", "lam", "l1", "dfac", "decay", "stats", "nd",
            "clip_norm", "norm_eps", "guard", "t", "lr", "consts", "kernel", "loop", "elem", "cuda", "prange", "math"}


class RuleSpec:
    """What gpunet knows of a rule: its function, state names and fills, hyper-parameter names
    and defaults, whether it reads ``t``; compiled tier functions are cached here."""

    def __init__(self, fn, state, name):
        self.fn, self.name = fn, name
        fills = dict(state) if isinstance(state, dict) else {s: 0.0 for s in state}
        self.state = tuple(fills)
        self.fills = {k: check_number(v, f"the fill of state {k!r}", name) for k, v in fills.items()}
        params = list(inspect.signature(fn).parameters.values())
        names = [p.name for p in params]
        n = len(self.state)
        if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise TypeError(f"update_rule {name}: the function takes plain arguments only (no *args, **kwargs, "
                            "keyword-only)")
        if names[:2] != ["w", "g"] or tuple(names[2:2 + n]) != self.state:
            raise TypeError(f"update_rule {name}: the function's arguments must start (w, g, "
                            f"{', '.join(self.state) + ', ' if n else ''}lr, ...), got ({', '.join(names)})")
        rest = params[2 + n:]
        if not rest or rest[0].name != "lr":
            raise TypeError(f"update_rule {name}: after w, g and the state comes lr, got "
                            f"({', '.join(names)})")
        self.uses_t = len(rest) > 1 and rest[1].name == "t"
        hyper = rest[2 if self.uses_t else 1:]
        clash = sorted((set(self.state) | {p.name for p in hyper}) & RESERVED)
        if clash:
            raise TypeError(f"update_rule {name}: {clash} are names gpunet's loops use; rename them")
        missing = [p.name for p in hyper if p.default is p.empty]
        if missing:
            raise TypeError(f"update_rule {name}: hyper-parameters {missing} need defaults in the function's signature")
        self.hyper = tuple(p.name for p in hyper)
        self.defaults = {p.name: p.default for p in hyper}
        self.lr_default = None if rest[0].default is rest[0].empty else rest[0].default
        self._compiled = {}

    def check_odd(self, hyper: dict, lr: float) -> None:
        """``maximize=True`` runs the rule with (g, η) for the step on (−g, η) (see
        ``Optimizer``), exact when the rule's trajectory of w is the same under (g, η) → (−g, −η):
        w − η·f(g, state) with f odd in g, as Adadelta's. Checked here on a few steps of scalars
        (from the state's fills); a rule that fails is a clear error."""
        lr = lr if lr else 1e-2

        def walk(sign):
            w, state = 0.7, [self.fills[k] for k in self.state]
            out = []
            for t, g in enumerate((0.3, -1.2, 0.5, 2.0), start=1):
                args = [w, sign * g, *state, sign * lr] + ([t] if self.uses_t else []) + [hyper[h] for h in self.hyper]
                res = self.fn(*args)
                res = res if isinstance(res, tuple) else (res,)
                w, state = float(res[0]), list(res[1:])
                out.append(w)
            return out

        plain, mirrored = walk(1.0), walk(-1.0)
        if any(not math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15) for a, b in zip(plain, mirrored)):
            raise ValueError(f"{self.name}: maximize=True needs a rule whose step is odd in (g, lr) together "
                             f"(w - lr*f(g, ...) with f odd in g); this one gives w = {plain} for (g, lr) and "
                             f"{mirrored} for (-g, -lr). Negate the loss instead")

    def compiled(self, tier: str, module_of):
        """The tier function (compiled on first use, once per process)."""
        f = self._compiled.get(tier)
        if f is None:
            f = self._compiled[tier] = module_of(tier).compile_rule(self)
        return f


class RuleOptimizer(Optimizer):
    """Base of the optimizers ``update_rule`` makes; ``spec`` is the rule."""

    spec: RuleSpec = None

    def __init__(self, model, lr=None, **kwargs):
        spec = self.spec
        who = type(self).__name__
        common = {k: kwargs.pop(k) for k in ("weight_decay", "l1", "clip_norm", "clip_value", "decay_all",
                                             "nonfinite", "maximize") if k in kwargs}
        unknown = set(kwargs) - set(spec.hyper)
        if unknown:
            raise TypeError(f"{who}: unknown arguments {sorted(unknown)}; its hyper-parameters are "
                            f"{list(spec.hyper)}, besides lr, weight_decay, l1, clip_norm, clip_value, decay_all, "
                            "nonfinite, maximize")
        if lr is None:
            if spec.lr_default is None:
                raise TypeError(f"{who}: lr is required (the rule gives it no default)")
            lr = spec.lr_default
        super().__init__(model, lr, **common)
        self.rule = spec.name
        for h in spec.hyper:
            value = kwargs.get(h, spec.defaults[h])
            self.hyper[h] = bool(value) if isinstance(value, bool) else check_number(value, h, who)
        for name in spec.state:
            self._add_state(name, spec.fills[name])
        if self.maximize:
            spec.check_odd(self.hyper, self.lr)

    def step(self) -> None:
        self._rule_step(self.spec, **self.hyper)

    def _decay_args(self):
        return {"weight_decay": self.weight_decay, "l1": self.l1, "decoupled_wd": 0.0}


def update_rule(state=(), name: str | None = None):
    """Decorator: an optimizer class from an element-wise update function (see the module
    docstring). ``state``: the names of its state buffers (each starts at 0), or a dict of name
    -> initial value."""
    def make(fn):
        cls_name = name or fn.__name__
        spec = RuleSpec(fn, state, cls_name)
        doc = (fn.__doc__ or f"The update rule {cls_name}.") + (
            f"\n\n{cls_name}(model, lr={spec.lr_default!r}, "
            + "".join(f"{h}={spec.defaults[h]!r}, " for h in spec.hyper)
            + "weight_decay=0.0, l1=0.0, clip_norm=None, clip_value=None, decay_all=False, nonfinite='skip')")
        return type(cls_name, (RuleOptimizer,), {"spec": spec, "__doc__": doc, "__module__": fn.__module__})

    return make


def _adadelta(w, g, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6):
    """Adadelta (Zeiler 2012), as PyTorch's: q ← ρq + (1 − ρ)g²;  Δ = √(u + ε)/√(q + ε)·g;
    u ← ρu + (1 − ρ)Δ²;  w ← w − ηΔ. Written as a ``gpunet.optim.update_rule``."""
    square_avg = rho * square_avg + (1 - rho) * g * g
    delta = math.sqrt(acc_delta + eps) / math.sqrt(square_avg + eps) * g
    acc_delta = rho * acc_delta + (1 - rho) * delta * delta
    return w - lr * delta, square_avg, acc_delta


Adadelta = update_rule(state=("square_avg", "acc_delta"), name="Adadelta")(_adadelta)
Adadelta.__module__ = __name__
