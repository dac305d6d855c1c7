"""One fused optimizer step over a flat parameter arena.

``fused_step(rule, params, grads, states, stats, ...)`` runs at most two launches and never
synchronizes with the host (except under ``nonfinite="raise"``):

1. the gradient-statistics pass (kernels/global_norm): Σg² and the non-finite flag into
   ``stats``, advancing the step counters — when clipping by norm, normalizing, or guarding
   against non-finite gradients; otherwise only the step count is advanced;
2. the update (kernels/optim_update), which reads the flag, the norm and the step count from
   ``stats`` in device memory.

Rules and their state buffers (in this order): "sgd" (none), "momentum" (velocity),
"adagrad" (sum of squares), "rmsprop" (square average, gradient average, velocity — the last two
may be any stand-in array when unused), "adam" (first and second moments). Formulas:
kernels/optim_update/reference.py.

Non-finite policies: "skip" (the update kernel reads the flag and writes nothing; stats[3]
counts skipped steps, stats[2] applied ones), "raise" (the flag is read on the host — a sync —
and FloatingPointError is raised before anything is written), "ignore" (no guard: NaN and Inf
flow into the parameters). ``seen`` (a float64 device array of one element) counts, under
"ignore", the steps whose gradient was not finite (the statistics pass then runs for the flag).

``fused_rule_step`` runs an update rule a user defined (``gpunet.optim.update_rule``) the same
way, through the Numba tiers.

``KERNEL_ARGS`` is the one place where an optimizer's hyper-parameters (PyTorch's names) become
the kernels' arguments; ``kernel_args(rule, hyper)`` applies it. ``check=False`` skips the
argument checks (the optimizer classes made them when they were built; GPUNET_CHECKS=debug runs
them anyway, see registry.py).
"""
from __future__ import annotations

from .arrays import check_flat, check_stats
from .global_norm import OP as GLOBAL_NORM
from .registry import register, select_tier

OP = register("optim_update")

RULES = {"sgd": 0, "momentum": 1, "adagrad": 1, "rmsprop": 3, "adam": 2}
# kernel argument <- hyper-parameter name (or (name, index) into a pair such as betas)
KERNEL_ARGS = {"sgd": {}, "momentum": {"mu": "momentum", "nesterov": "nesterov"},
               "adagrad": {"lr_decay": "lr_decay", "eps": "eps"},
               "rmsprop": {"alpha": "alpha", "eps": "eps", "mu": "momentum", "centered": "centered"},
               "adam": {"beta1": ("betas", 0), "beta2": ("betas", 1), "eps": "eps"}}
RULE_HYPER = {rule: tuple(args) for rule, args in KERNEL_ARGS.items()}
POLICIES = ("skip", "raise", "ignore")


def kernel_args(rule: str, hyper: dict) -> dict:
    """The kernel arguments of ``rule`` from an optimizer's hyper-parameters (PyTorch's names)."""
    return {arg: hyper[src] if isinstance(src, str) else hyper[src[0]][src[1]]
            for arg, src in KERNEL_ARGS[rule].items()}


def fused_step(rule: str, params, grads, states, stats, *, n_decay: int, lr: float, weight_decay: float = 0.0,
               l1: float = 0.0, decoupled_wd: float = 0.0, clip_norm: float | None = None,
               clip_value: float | None = None, norm_eps: float = 0.0, nonfinite: str = "skip",
               seen=None, tier: str | None = None, check: bool = True, **hyper) -> None:
    """Update ``params`` (and ``states``) in place from ``grads``; see the module docstring.
    Hyper-parameters are checked by the optimizer classes; this checks the arrays."""
    if check:
        _check(rule, params, grads, states, stats, n_decay, nonfinite, hyper)
    update = getattr(OP.select(params, tier=tier), rule)
    _apply(update, rule, params, grads, states, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
           clip_value, norm_eps, nonfinite, seen, tier, hyper)


def fused_rule_step(spec, params, grads, states, stats, *, n_decay: int, lr: float, weight_decay: float = 0.0,
                    l1: float = 0.0, decoupled_wd: float = 0.0, clip_norm: float | None = None,
                    clip_value: float | None = None, nonfinite: str = "skip", seen=None, tier: str | None = None,
                    check: bool = True, **hyper) -> None:
    """``fused_step`` for an update rule defined with ``gpunet.optim.update_rule`` (``spec``): its
    element function compiled by the Numba tiers (numba_cpu on the CPU; numba_cuda on a GPU, since
    the CUDA C tier cannot compile Python), or the reference with ``tier="reference"``."""
    if check:
        _check_arrays(spec.name, params, grads, states, stats, n_decay, nonfinite)
        if len(tuple(states)) != len(spec.state):
            raise ValueError(f"{spec.name} step: the rule has {len(spec.state)} state buffers, got {len(tuple(states))}")
    name = select_tier(params, tier=tier)
    if name == "reference":
        ref = OP.module("reference").rule

        def update(*args, **kwargs):
            return ref(spec, *args, **kwargs)
    else:
        update = spec.compiled("numba_cpu" if name == "numba_cpu" else "numba_cuda", OP.module)
    _apply(update, spec.name, params, grads, states, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
           clip_value, 0.0, nonfinite, seen, tier, hyper)


def _apply(update, rule, params, grads, states, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
           clip_value, norm_eps, nonfinite, seen, tier, hyper):
    """The statistics pass when needed, the policy, then ``update``: what every step shares."""
    guard = nonfinite != "ignore"
    clip_norm = 0.0 if clip_norm is None else float(clip_norm)
    norm_eps = float(norm_eps)
    if guard or clip_norm > 0 or norm_eps > 0 or seen is not None:
        GLOBAL_NORM.select(stats, tier=tier).grad_stats(grads, stats, guard)
    if not guard:
        stats[2] += 1.0  # every step is applied; a tiny device op, no sync
        if seen is not None:
            seen += stats[1]
    if nonfinite == "raise" and float(stats[1]) != 0.0:  # host sync, by policy
        raise FloatingPointError(
            f"{rule} step: the gradient holds NaN or Inf; parameters left unchanged "
            "(nonfinite='skip' skips such steps on the device instead)")
    update(params, grads, *states, stats, n_decay=int(n_decay), lr=float(lr), weight_decay=float(weight_decay),
           l1=float(l1), decoupled_wd=float(decoupled_wd), clip_norm=clip_norm,
           clip_value=0.0 if clip_value is None else float(clip_value), norm_eps=norm_eps, guard=guard, **hyper)


def _check(rule, params, grads, states, stats, n_decay, nonfinite, hyper):
    if rule not in RULES:
        raise ValueError(f"fused_step: unknown rule {rule!r}; expected one of {sorted(RULES)}")
    states = tuple(states)
    if len(states) != RULES[rule]:
        raise ValueError(f"fused_step: rule {rule!r} takes {RULES[rule]} state buffers, got {len(states)}")
    missing = set(RULE_HYPER[rule]) - set(hyper)
    if missing or set(hyper) - set(RULE_HYPER[rule]):
        raise TypeError(f"fused_step: rule {rule!r} takes hyper-parameters {RULE_HYPER[rule]}, got {sorted(hyper)}")
    _check_arrays(rule, params, grads, states, stats, n_decay, nonfinite)


def _check_arrays(rule, params, grads, states, stats, n_decay, nonfinite):
    if nonfinite not in POLICIES:
        raise ValueError(f"fused_step: nonfinite must be one of {POLICIES}, got {nonfinite!r}")
    arrays = {"parameters": params, "gradients": grads}
    arrays.update({f"state buffer {i}": s for i, s in enumerate(states)})
    n, _, dev = check_flat(f"{rule} step", arrays)
    check_stats(f"{rule} step", stats, dev)
    if not 0 <= int(n_decay) <= n:
        raise ValueError(f"{rule} step: n_decay must lie in [0, {n}], got {n_decay}")
