"""The optimizer interface: one fused update over a model's flat parameter arena per step.

Every optimizer takes, besides its own hyper-parameters (named and defaulted as in PyTorch):

- ``clip_norm=None``: clip by global norm, g ← g·θ/‖g‖ when ‖g‖ > θ (‖g‖ over the whole arena,
  computed on the device and read there by the update kernel);
- ``clip_value=None``: then clamp every gradient to [−c, c];
- ``weight_decay`` (coupled L2, g ← g + λw; decoupled w ← w − ηλw for AdamW) and ``l1=0``
  (g ← g + λ₁ sign(w)). Decay applies to the arena's decay range [0, arena.n_decay): weights of
  Linear and Conv layers. Biases and batch-norm scales and shifts are laid out after it and get
  no decay by default; ``decay_all=True`` decays every trained parameter;
- ``maximize=False`` (PyTorch's): ascend the objective instead, the step on −g (the sign taken
  before clipping and decay, as PyTorch). It runs the same kernels on the mirrored problem: with
  η, λ, λ₁ and λ_d negated, every rule gives the step on −g exactly — each is odd in (g, η) —
  bit for bit, since negation is exact. The first-moment buffers (Adam's ``exp_avg``, RMSprop's
  ``grad_avg``) then hold the moments of +g, the negatives of PyTorch's; weights, velocities in
  parameter units and second moments are the same;
- ``nonfinite="skip"``: the policy for a gradient holding NaN or Inf. "skip" (default): the
  update kernel reads a device flag and leaves parameters and state untouched; the step is
  counted in ``skipped_steps``. "raise": the flag is read on the host before the update (one
  sync per step) and FloatingPointError is raised. "ignore": no check (and no extra pass when
  not clipping by norm).

``lr`` may be set between steps (schedules do); it is a kernel argument, so nothing recompiles.
The step's statistics live on the device, in ``stats`` (``StepStats``: named views into one
buffer); ``steps`` and ``skipped_steps`` read them (a sync). ``iterations`` counts calls to
``step()`` on the host. Create the optimizer after moving the model (``model.to``): moving
rebuilds the arena, and a stale optimizer refuses to step. The parameters of frozen layers
(``Layer.freeze``) sit at the end of the arena, after ``arena.n_train``: every step, its norm
and its statistics cover the trained prefix [0, n_train) alone.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..ops import registry
from ..ops.optim_update import POLICIES, fused_rule_step, fused_step, kernel_args


def as_model(model, who: str):
    """The gpunet model an optimizer (or ``clip_grad_norm``) works on: the model itself, or the
    ``model.parameters()`` list, which knows its model. Anything else is a clear error."""
    from ..layers.base import Layer

    owner = getattr(model, "owner", None)
    if isinstance(owner, Layer):
        return owner
    if isinstance(model, Layer):
        return model
    if isinstance(model, (list, tuple)) and model and isinstance(model[0], tuple):
        raise TypeError(f"{who}: got (name, array) pairs, as named_parameters() gives; pass the model or "
                        "model.parameters()")
    raise TypeError(f"{who}: expected a gpunet model (a Layer) or its model.parameters(), got "
                    f"{type(model).__name__}; gpunet optimizers update a whole model's parameter arena at once")


def check_lr(lr, who: str) -> float:
    return check_number(lr, "lr", who, lo=0.0)


def check_number(value, name: str, who: str, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    """``value`` as a float within [lo, hi] (open ends as told); a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v)
    if lo is not None:
        bad |= v <= lo if lo_open else v < lo
    if hi is not None:
        bad |= v >= hi if hi_open else v > hi
    if bad:
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        raise ValueError(f"{who}: {name} must be a finite number {' and '.join(s for s in (lo_s, hi_s) if s)}, "
                         f"got {value!r}")
    return v


def check_optional_positive(value, name: str, who: str):
    return None if value is None else check_number(value, name, who, lo=0.0, lo_open=True)


class StepStats:
    """An optimizer's step statistics on the device: one float64 buffer, named views of its slots.

    ``grad_sq_norm`` Σg² of the last step's gradient, ``nonfinite`` 1.0 when it held NaN or ±Inf,
    ``steps`` applied steps (Adam's t), ``skipped`` steps skipped for a non-finite gradient — the
    four slots the kernels read and write (``kernel``, kernels/global_norm/reference.py) — and
    ``nonfinite_seen``, the steps applied with a non-finite gradient (policy "ignore", counted while
    ``Optimizer.count_nonfinite`` is on). Each view is a 1-element device array; nothing here
    reads it to the host.
    """

    FIELDS = ("grad_sq_norm", "nonfinite", "steps", "skipped", "nonfinite_seen")

    def __init__(self, like):
        self.buffer = backend.get_array_module(like).zeros(len(self.FIELDS), dtype=np.float64)
        self.kernel = self.buffer[:4]
        for i, name in enumerate(self.FIELDS):
            setattr(self, name, self.buffer[i:i + 1])


# state buffers renamed since checkpoints were first written: old name -> new name
RENAMED_STATE = {"momentum_buffer": "velocity"}


class Optimizer:
    """Base class: holds the arena, the state buffers and the device step statistics.

    Subclasses set ``rule`` (a kernel of gpunet.ops.optim_update), fill ``self.hyper`` with their
    hyper-parameters under PyTorch's names (``kernel_args`` translates them for the kernel) and
    add their state buffers with ``_add_state``.
    """

    rule = "sgd"
    count_nonfinite = False  # TerminateOnNaN turns it on: count non-finite gradients applied ("ignore")

    def __init__(self, model, lr, *, weight_decay=0.0, l1=0.0, clip_norm=None, clip_value=None,
                 decay_all=False, nonfinite="skip", maximize=False):
        who = type(self).__name__
        model = as_model(model, who)
        self.model = model
        self._arena = self._stats = None  # bound to the model's arena as soon as it can be built
        self._state_specs = []
        self.lr = lr
        self.hyper = {}
        self.weight_decay = check_number(weight_decay, "weight_decay", who, lo=0.0)
        self.l1 = check_number(l1, "l1", who, lo=0.0)
        self.clip_norm = check_optional_positive(clip_norm, "clip_norm", who)
        self.clip_value = check_optional_positive(clip_value, "clip_value", who)
        self.decay_all = bool(decay_all)
        if not isinstance(maximize, (bool, np.bool_)):
            raise TypeError(f"{who}: maximize must be True or False, got {maximize!r}")
        self.maximize = bool(maximize)
        if nonfinite not in POLICIES:
            raise ValueError(f"{who}: nonfinite must be one of {POLICIES}, got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.iterations = 0
        self.state = {}
        if model.built:
            self._bind()

    # ----------------------------------------------------------------- the arena, bound once known
    def _bind(self) -> None:
        unbuilt = self.model.unbuilt_layers()
        if unbuilt:
            raise RuntimeError(f"{type(self).__name__}: the model's sizes are not known yet ({', '.join(unbuilt)} infer "
                               "theirs from the first input); run a forward pass, or model.build(input_shape), "
                               "before stepping")
        self._arena = self.model.arena
        self._stats = StepStats(self._arena.params)
        for name, fill in self._state_specs:
            self._allocate(name, fill)

    @property
    def arena(self):
        """The model's parameter arena; an optimizer made before the model's sizes were known binds
        to it on first use (after the first forward)."""
        if self._arena is None:
            self._bind()
        return self._arena

    @property
    def stats(self) -> StepStats:
        if self._stats is None:
            self._bind()
        return self._stats

    # ----------------------------------------------------------------- state buffers
    def _add_state(self, name: str, fill: float = 0.0):
        self._state_specs.append((name, fill))
        if self._arena is not None:
            self._allocate(name, fill)

    def _allocate(self, name: str, fill: float) -> None:
        xp = backend.get_array_module(self._arena.params)
        self.state[name] = xp.full(self._arena.size, fill, dtype=self._arena.dtype)

    # ----------------------------------------------------------------- hyper-parameters
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_lr(value, type(self).__name__)

    @property
    def n_decay(self) -> int:
        """Decay terms apply to the arena range [0, n_decay)."""
        return self.arena.n_train if self.decay_all else self.arena.n_decay

    def _decay_args(self) -> dict:
        """weight_decay, l1 and decoupled_wd for the kernel (AdamW overrides)."""
        return {"weight_decay": self.weight_decay, "l1": self.l1, "decoupled_wd": 0.0}

    def _kernel_lr_and_decay(self) -> tuple:
        """(η, decay arguments) as the kernels take them: negated under ``maximize`` (the step on
        −g, see the module docstring)."""
        decay = self._decay_args()
        if not self.maximize:
            return self._lr, decay
        return -self._lr, {k: -v for k, v in decay.items()}

    def _norm_eps(self) -> float:
        """ε of normalized SGD (0: no normalization)."""
        return 0.0

    def _states(self) -> tuple:
        return tuple(self.state.values())

    def _buffers(self) -> tuple:
        """(params, grads, state buffers): the trained prefix of each (all of it when nothing is
        frozen)."""
        a = self.arena
        if a.n_train == 0:
            raise RuntimeError(f"{type(self).__name__}: every parameter of the model is frozen; nothing to train "
                               "(unfreeze a layer first)")
        return a.trainable(a.params), a.trainable(a.grads), tuple(a.trainable(v) for v in self._states())

    # ----------------------------------------------------------------- the step
    def _check_arena(self):
        arena = self.arena  # binds an optimizer made before the model's sizes were known
        if self.model.arena is not arena:
            raise RuntimeError(
                f"{type(self).__name__}: the model was moved, re-flattened or had layers frozen or unfrozen after "
                "this optimizer was created; create the optimizer after model.to(...) and layer.freeze()"
            )

    def step(self) -> None:
        """One fused update of every parameter from the gradients in ``arena.grads`` (no host sync
        unless nonfinite="raise")."""
        self._check_arena()
        params, grads, states = self._buffers()
        lr, decay = self._kernel_lr_and_decay()
        self.iterations += 1
        fused_step(self.rule, params, grads, states, self.stats.kernel, n_decay=self.n_decay,
                   lr=lr, clip_norm=self.clip_norm, clip_value=self.clip_value, norm_eps=self._norm_eps(),
                   nonfinite=self.nonfinite, seen=self.stats.nonfinite_seen if self.count_nonfinite else None,
                   check=registry.DEBUG, **decay, **kernel_args(self.rule, self.hyper))

    def _rule_step(self, spec, **hyper) -> None:
        """``step`` through a Numba-compiled update rule (``spec``, see rule.py) instead of a
        built-in kernel: the same preparation, guard and statistics, one fused pass."""
        self._check_arena()
        params, grads, states = self._buffers()
        lr, decay = self._kernel_lr_and_decay()
        self.iterations += 1
        fused_rule_step(spec, params, grads, states, self.stats.kernel, n_decay=self.n_decay,
                        lr=lr, clip_norm=self.clip_norm, clip_value=self.clip_value, nonfinite=self.nonfinite,
                        seen=self.stats.nonfinite_seen if self.count_nonfinite else None, check=registry.DEBUG,
                        **decay, **hyper)

    def zero_grad(self) -> None:
        """Not needed (backward overwrites the gradients); zeroes them for code that expects it."""
        self.arena.grads.fill(0)

    # ----------------------------------------------------------------- counters (device)
    @property
    def steps(self) -> int:
        """Applied steps (skipped ones excluded); reading it syncs with the device."""
        return int(self.stats.steps[0])

    @property
    def skipped_steps(self) -> int:
        """Steps skipped for a non-finite gradient; reading it syncs with the device."""
        return int(self.stats.skipped[0])

    def grad_norm(self):
        """‖g‖ of the last step's gradient (before clipping) as a 0-d device array; valid when the
        step ran the statistics pass (clipping by norm, or nonfinite "skip"/"raise")."""
        return backend.get_array_module(self.stats.buffer).sqrt(self.stats.grad_sq_norm).reshape(())

    # ----------------------------------------------------------------- snapshots (device only)
    def snapshot(self, into: dict | None = None) -> dict:
        """Device copies of the state buffers and statistics plus the host counters, written into
        ``into`` (a previous snapshot: no allocation) when given; no host sync."""
        self._check_arena()
        if into is None:
            into = {"state": {k: v.copy() for k, v in self.state.items()}, "stats": self.stats.buffer.copy()}
        else:
            for k, v in self.state.items():
                into["state"][k][...] = v
            into["stats"][...] = self.stats.buffer
        into["lr"], into["iterations"] = self._lr, self.iterations
        return into

    def restore(self, snap: dict) -> None:
        """Put back what ``snapshot`` copied (same arena)."""
        for k, v in snap["state"].items():
            self.state[k][...] = v
        self.stats.buffer[...] = snap["stats"]
        self._lr, self.iterations = snap["lr"], snap["iterations"]

    # ----------------------------------------------------------------- state dicts
    def _all_hyper(self) -> dict:
        return {"weight_decay": self.weight_decay, "l1": self.l1, "clip_norm": self.clip_norm,
                "clip_value": self.clip_value, "decay_all": self.decay_all, "nonfinite": self.nonfinite,
                "maximize": self.maximize, **self.hyper}

    def state_dict(self) -> dict:
        """Hyper-parameters, counters and copies of the state buffers (on their device)."""
        self._check_arena()
        return {"optimizer": type(self).__name__, "lr": self.lr, "hyper": self._all_hyper(),
                "steps": self.steps, "skipped_steps": self.skipped_steps, "iterations": self.iterations,
                "frozen": list(self.arena.frozen), "state": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict`` (from any device) into this optimizer, exactly."""
        who = f"{type(self).__name__}.load_state_dict"
        if state.get("optimizer") != type(self).__name__:
            raise ValueError(f"{who}: the state is of a {state.get('optimizer')!r} optimizer")
        self._check_arena()
        if state["hyper"] != self._all_hyper():
            fresh = type(self)(self.model, state["lr"], **state["hyper"])  # validates them, sizes the buffers
            self.__dict__.update(fresh.__dict__)
        frozen = list(state.get("frozen", []))  # states written before freezing existed: nothing frozen
        if frozen != list(self.arena.frozen):
            raise ValueError(f"{who}: the state was written with the parameters {frozen} frozen, this model has "
                             f"{list(self.arena.frozen)} frozen; the arena's layouts differ, so its buffers would "
                             "land on the wrong parameters (freeze the same layers first)")
        buffers = {RENAMED_STATE.get(k, k): v for k, v in state["state"].items()}  # older checkpoints
        if set(buffers) != set(self.state):
            raise KeyError(f"{who}: state buffers {sorted(state['state'])}, expected {sorted(self.state)}")
        for k, src in buffers.items():
            if tuple(np.shape(src)) != (self.arena.size,):
                raise ValueError(f"{who}: state buffer {k!r} has shape {tuple(np.shape(src))}, the arena "
                                 f"holds {self.arena.size} values")
        self.lr = state["lr"]
        for k, src in buffers.items():
            self.state[k][...] = backend.to_device(src, self.arena.device, dtype=self.arena.dtype)
        self.stats.steps[...] = float(state["steps"])
        self.stats.skipped[...] = float(state["skipped_steps"])
        self.iterations = int(state["iterations"])

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self._all_hyper().items()
                       if v not in (None, 0.0, False) and not (k == "nonfinite" and v == "skip"))
        return f"{type(self).__name__}(lr={self.lr:g}{', ' + hp if hp else ''})"
