"""Fused optimizer updates over a flat arena: the specification (NumPy or CuPy, any float dtype).

Every rule takes the flat parameters ``w``, gradients ``g``, its state buffers, and ``stats``
(float64[4]: Σg², non-finite flag, applied steps t, skipped steps; see global_norm/reference.py),
written by the gradient-statistics pass that runs before the update. One step, element by element:

    skip      if guard and stats[1] != 0: nothing is written (parameters and state untouched)
    scale     s = θ/‖g‖ if clip_norm = θ > 0 and ‖g‖ = √stats[0] > θ, else 1
              s ← s/(s‖g‖ + ε_n)                       if norm_eps = ε_n > 0 (normalized SGD)
    gradient  g ← s·g;  g ← clamp(g, −c, c)            if clip_value = c > 0 (NaN passes through)
              g ← g + λw + λ₁ sign(w)                   for i < n_decay (λ = weight_decay, λ₁ = l1)
    decay     w ← w(1 − ηλ_d)                           for i < n_decay (λ_d = decoupled_wd, AdamW)
    rule      sgd:      w ← w − ηg
              momentum: v ← μv − ηg;  w ← w + v   (nesterov: w ← w + μv − ηg)
              adagrad:  a ← a + g²;  w ← w − η_t g/(√a + ε),  η_t = η/(1 + (t − 1)·lr_decay)
              rmsprop:  q ← αq + (1 − α)g²;  centered: ḡ ← ḡ + (1 − α)(g − ḡ), d = √(q − ḡ²) + ε,
                        else d = √q + ε;  μ > 0: b ← μb − ηg/d, w ← w + b;  else w ← w − ηg/d
              adam:     m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
                        w ← w − (η/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε)

t = stats[2] is the step count including this step. Momentum buffers hold a velocity in parameter
units (v ← μv − ηg); PyTorch keeps v ← μv + g and steps by ηv — the same at a constant η.
"""
from __future__ import annotations

import functools

import numpy as np

from ..common.xp import array_module as get_array_module


def _quiet(fn):
    """NaN and Inf are legitimate inputs here (the guard's tests): no NumPy warnings for them."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    return run


def _scale(xp, stats, clip_norm, norm_eps):
    norm = xp.sqrt(stats[0])
    s = xp.ones((), dtype=xp.float64)
    if clip_norm > 0:
        s = xp.where(norm > clip_norm, clip_norm / xp.maximum(norm, clip_norm), 1.0)
    if norm_eps > 0:
        s = s / (s * norm + norm_eps)
    return s


def _prepare(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard):
    """(skip, gradient after scaling, clipping and decay terms, w after decoupled decay)."""
    xp = get_array_module(w)
    skip = (stats[1] != 0) if guard else xp.zeros((), dtype=bool)
    gg = g * _scale(xp, stats, clip_norm, norm_eps)
    if clip_value > 0:
        gg = xp.where(gg > clip_value, clip_value, xp.where(gg < -clip_value, -clip_value, gg))
    decay = xp.arange(w.size) < n_decay
    gg = xp.where(decay, gg + weight_decay * w + l1 * xp.sign(w), gg)
    w0 = xp.where(decay, w * (1.0 - lr * decoupled_wd), w)
    return skip, gg, w0


def _commit(xp, skip, pairs):
    for arr, new in pairs:
        arr[...] = xp.where(skip, arr, new).astype(arr.dtype)


@_quiet
def sgd(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard):
    xp = get_array_module(w)
    skip, gg, w0 = _prepare(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
                            norm_eps, guard)
    _commit(xp, skip, [(w, w0 - lr * gg)])


@_quiet
def momentum(w, g, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
             guard, mu, nesterov):
    xp = get_array_module(w)
    skip, gg, w0 = _prepare(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
                            norm_eps, guard)
    v = mu * buf - lr * gg
    w1 = w0 + mu * v - lr * gg if nesterov else w0 + v
    _commit(xp, skip, [(w, w1), (buf, v)])


@_quiet
def adagrad(w, g, acc, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
            guard, lr_decay, eps):
    xp = get_array_module(w)
    skip, gg, w0 = _prepare(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
                            norm_eps, guard)
    clr = lr / (1.0 + (stats[2] - 1.0) * lr_decay)
    a = acc + gg * gg
    _commit(xp, skip, [(w, w0 - clr * gg / (xp.sqrt(a) + eps)), (acc, a)])


@_quiet
def rmsprop(w, g, sq, ga, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
            norm_eps, guard, alpha, eps, mu, centered):
    xp = get_array_module(w)
    skip, gg, w0 = _prepare(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
                            norm_eps, guard)
    q = alpha * sq + (1.0 - alpha) * gg * gg
    pairs = [(sq, q)]
    if centered:
        gbar = ga + (1.0 - alpha) * (gg - ga)
        d = xp.sqrt(q - gbar * gbar) + eps
        pairs.append((ga, gbar))
    else:
        d = xp.sqrt(q) + eps
    if mu > 0:
        b = mu * buf - lr * gg / d
        pairs += [(buf, b), (w, w0 + b)]
    else:
        pairs.append((w, w0 - lr * gg / d))
    _commit(xp, skip, pairs)


@_quiet
def adam(w, g, m, v, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
         guard, beta1, beta2, eps):
    xp = get_array_module(w)
    skip, gg, w0 = _prepare(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
                            norm_eps, guard)
    t = stats[2]
    bc1 = 1.0 - beta1 ** t
    bc2 = 1.0 - beta2 ** t
    m1 = beta1 * m + (1.0 - beta1) * gg
    v1 = beta2 * v + (1.0 - beta2) * gg * gg
    w1 = w0 - (lr / bc1) * m1 / (xp.sqrt(v1) / xp.sqrt(bc2) + eps)
    _commit(xp, skip, [(w, w1), (m, m1), (v, v1)])


@_quiet
def rule(spec, w, g, *rest, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard,
         **hyper):
    """A user's update rule (gpunet.optim.update_rule): the element function applied to every
    element in float64 Python arithmetic, after the same preparation as the built-in rules."""
    *states, stats = rest
    xp = get_array_module(w)
    skip, gg, w0 = _prepare(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
                            norm_eps, guard)
    extra = {"lr": float(lr), **({"t": float(stats[2])} if spec.uses_t else {}),
             **{h: float(hyper[h]) for h in spec.hyper}}
    host = [np.asarray(a, dtype=np.float64) for a in (w0, gg, *states)]
    out = [np.empty(w.size) for _ in range(1 + len(states))]
    for i in range(w.size):
        r = spec.fn(*(float(a[i]) for a in host), **extra)
        for o, v in zip(out, r if states else (r,)):
            o[i] = v
    _commit(xp, skip, [(a, xp.asarray(o)) for a, o in zip((w, *states), out)])
