"""Fused optimizer updates on the CPU: one parallel pass over the arena, no temporaries.

The host part of each function reads ``stats`` (plain NumPy memory: no sync), decides the skip,
computes the gradient scale and the per-step constants (1 − β, bias corrections 1 − βᵗ,
1 − ηλ_d) in float64 and rounds them once to the arena's dtype, into one small array ``k`` that
the loop takes as one argument; the loops then run in that dtype (float32 math for a float32
arena, as on the GPU). Two loops per rule — [0, n_decay) with the decay terms, [n_decay, n)
without — so that no loop carries a branch on the index. Division and square root do not keep
them from vectorizing (kernels/common/jit.py).

The element functions below are plain Python, compiled here with ``njit`` and by numba_cuda.py
with ``cuda.jit(device=True)``: one copy of the arithmetic for both Numba tiers. They contain no
float literals, so they keep the precision of the constants they are given. Formulas: see
reference.py.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..common.jit import njit
from ..common.threads import parallel_njit, serial_below

SERIAL_BELOW = 1 << 19  # parameters: smaller arenas run the serial builds (common/threads.py)

# ----------------------------------------------------------------- element functions (shared)


def prep_plain(g, s, clip_value, do_clip):
    """g ← clamp(s·g, −c, c); a NaN passes through the clamp."""
    g = g * s
    if do_clip:
        if g > clip_value:
            g = clip_value
        elif g < -clip_value:
            g = -clip_value
    return g


def prep_decay(g, w, s, clip_value, do_clip, lam, l1):
    """prep_plain, then g ← g + λw + λ₁ sign(w) (written out: element functions call no others)."""
    g = g * s
    if do_clip:
        if g > clip_value:
            g = clip_value
        elif g < -clip_value:
            g = -clip_value
    return g + lam * w + (l1 if w > 0 else (-l1 if w < 0 else l1 - l1))


def sgd_elem(w, g, lr):
    return w - lr * g


def momentum_elem(w, g, v, lr, mu, nesterov):
    v = mu * v - lr * g
    if nesterov:
        w = w + mu * v - lr * g
    else:
        w = w + v
    return w, v


def adagrad_elem(w, g, a, clr, eps):
    a = a + g * g
    return w - clr * g / (math.sqrt(a) + eps), a


def rmsprop_elem(w, g, q, gbar, b, lr, alpha, oma, eps, mu, centered, use_mom):
    q = alpha * q + oma * g * g
    if centered:
        gbar = gbar + oma * (g - gbar)
        d = math.sqrt(q - gbar * gbar) + eps
    else:
        d = math.sqrt(q) + eps
    if use_mom:
        b = mu * b - lr * g / d
        w = w + b
    else:
        w = w - lr * g / d
    return w, q, gbar, b


def adam_elem(w, g, m, v, b1, omb1, b2, omb2, step_size, sqrt_bc2, eps):
    m = b1 * m + omb1 * g
    v = b2 * v + omb2 * g * g
    return w - step_size * m / (math.sqrt(v) / sqrt_bc2 + eps), m, v


ELEMENTS = (prep_plain, prep_decay, sgd_elem, momentum_elem, adagrad_elem, rmsprop_elem, adam_elem)
_j = njit(inline="always", fastmath=False, cache=True)  # IR-level inlining into the loops
prep_plain_j, prep_decay_j, sgd_j, momentum_j, adagrad_j, rmsprop_j, adam_j = map(_j, ELEMENTS)

# ----------------------------------------------------------------- loops
# Each loop runs from 0 over the arrays it is given; the host calls it twice, on the views
# [0, n_decay) with decay=True and [n_decay, n) with decay=False. (A prange starting at an offset
# defeats vectorization, and the loop-invariant flag is hoisted out of the loop by LLVM.) k holds
# s, c, λ, λ₁, 1 − ηλ_d (the gradient preparation), then the rule's constants.


@parallel_njit(fastmath=False, cache=True)
def _sgd(w, g, decay, do_clip, k):
    s, cv, lam, l1, dfac, lr = k[0], k[1], k[2], k[3], k[4], k[5]
    for i in prange(w.size):
        wi = w[i]
        if decay:
            gi = prep_decay_j(g[i], wi, s, cv, do_clip, lam, l1)
            wi = wi * dfac
        else:
            gi = prep_plain_j(g[i], s, cv, do_clip)
        w[i] = sgd_j(wi, gi, lr)


@parallel_njit(fastmath=False, cache=True)
def _momentum(w, g, buf, decay, do_clip, nesterov, k):
    s, cv, lam, l1, dfac, lr, mu = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    for i in prange(w.size):
        wi = w[i]
        if decay:
            gi = prep_decay_j(g[i], wi, s, cv, do_clip, lam, l1)
            wi = wi * dfac
        else:
            gi = prep_plain_j(g[i], s, cv, do_clip)
        a, b = momentum_j(wi, gi, buf[i], lr, mu, nesterov)
        w[i] = a
        buf[i] = b


@parallel_njit(fastmath=False, cache=True)
def _adagrad(w, g, acc, decay, do_clip, k):
    s, cv, lam, l1, dfac, clr, eps = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    for i in prange(w.size):
        wi = w[i]
        if decay:
            gi = prep_decay_j(g[i], wi, s, cv, do_clip, lam, l1)
            wi = wi * dfac
        else:
            gi = prep_plain_j(g[i], s, cv, do_clip)
        a, b = adagrad_j(wi, gi, acc[i], clr, eps)
        w[i] = a
        acc[i] = b


@parallel_njit(fastmath=False, cache=True)
def _rmsprop(w, g, sq, ga, buf, decay, do_clip, centered, use_mom, k):
    s, cv, lam, l1, dfac = k[0], k[1], k[2], k[3], k[4]
    lr, alpha, oma, eps, mu = k[5], k[6], k[7], k[8], k[9]
    zero = lr - lr
    for i in prange(w.size):
        wi = w[i]
        if decay:
            gi = prep_decay_j(g[i], wi, s, cv, do_clip, lam, l1)
            wi = wi * dfac
        else:
            gi = prep_plain_j(g[i], s, cv, do_clip)
        gb = ga[i] if centered else zero
        bb = buf[i] if use_mom else zero
        a, q, gb, bb = rmsprop_j(wi, gi, sq[i], gb, bb, lr, alpha, oma, eps, mu, centered, use_mom)
        w[i] = a
        sq[i] = q
        if centered:
            ga[i] = gb
        if use_mom:
            buf[i] = bb


@parallel_njit(fastmath=False, cache=True)
def _adam(w, g, m, v, decay, do_clip, k):
    s, cv, lam, l1, dfac = k[0], k[1], k[2], k[3], k[4]
    b1, omb1, b2, omb2, step_size, sqrt_bc2, eps = k[5], k[6], k[7], k[8], k[9], k[10], k[11]
    for i in prange(w.size):
        wi = w[i]
        if decay:
            gi = prep_decay_j(g[i], wi, s, cv, do_clip, lam, l1)
            wi = wi * dfac
        else:
            gi = prep_plain_j(g[i], s, cv, do_clip)
        a, b, c = adam_j(wi, gi, m[i], v[i], b1, omb1, b2, omb2, step_size, sqrt_bc2, eps)
        w[i] = a
        m[i] = b
        v[i] = c

# ----------------------------------------------------------------- host part


def scale_of(stats, clip_norm, norm_eps) -> float:
    """The gradient scale s of reference.py, in float64."""
    s = 1.0
    norm = math.sqrt(float(stats[0])) if (clip_norm > 0 or norm_eps > 0) else 0.0
    if clip_norm > 0 and norm > clip_norm:
        s = clip_norm / norm
    if norm_eps > 0:
        s = s / (s * norm + norm_eps)
    return s


def _constants(w, stats, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard, rule):
    """None when the step is skipped, else (do_clip, k): k holds the gradient preparation's s, c,
    λ, λ₁, 1 − ηλ_d and then ``rule``'s constants, computed in float64 and rounded once to the
    arena's dtype (one small array: a loop call takes it as one argument)."""
    if guard and stats[1] != 0:
        return None
    cv = float(clip_value)
    return cv > 0, np.array((scale_of(stats, float(clip_norm), float(norm_eps)), cv if cv > 0 else np.inf,
                             weight_decay, l1, 1.0 - lr * decoupled_wd, *rule), dtype=w.dtype)


def _run(loop, arrays, n_decay, flags, k):
    """The loop over [0, n_decay) with decay terms, then over [n_decay, n) without."""
    n = arrays[0].size
    nd = min(int(n_decay), n)
    if nd == n:
        loop(*arrays, True, *flags, k)
        return
    if nd > 0:
        loop(*[a[:nd] for a in arrays], True, *flags, k)
    loop(*[a[nd:] for a in arrays], False, *flags, k)


@serial_below(SERIAL_BELOW)
def sgd(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard):
    c = _constants(w, stats, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard, (lr,))
    if c is not None:
        _run(_sgd, (w, g), n_decay, (c[0],), c[1])


@serial_below(SERIAL_BELOW)
def momentum(w, g, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
             guard, mu, nesterov):
    c = _constants(w, stats, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard, (lr, mu))
    if c is not None:
        _run(_momentum, (w, g, buf), n_decay, (c[0], bool(nesterov)), c[1])


@serial_below(SERIAL_BELOW)
def adagrad(w, g, acc, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
            guard, lr_decay, eps):
    clr = lr / (1.0 + (float(stats[2]) - 1.0) * lr_decay)
    c = _constants(w, stats, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard, (clr, eps))
    if c is not None:
        _run(_adagrad, (w, g, acc), n_decay, (c[0],), c[1])


@serial_below(SERIAL_BELOW)
def rmsprop(w, g, sq, ga, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
            norm_eps, guard, alpha, eps, mu, centered):
    c = _constants(w, stats, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard,
                   (lr, alpha, 1.0 - alpha, eps, mu))
    if c is not None:
        _run(_rmsprop, (w, g, sq, ga, buf), n_decay, (c[0], bool(centered), bool(mu > 0)), c[1])


@serial_below(SERIAL_BELOW)
def adam(w, g, m, v, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
         guard, beta1, beta2, eps):
    t = float(stats[2])
    bc1 = 1.0 - beta1 ** t
    bc2 = 1.0 - beta2 ** t
    c = _constants(w, stats, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard,
                   (beta1, 1.0 - beta1, beta2, 1.0 - beta2, lr / bc1, math.sqrt(bc2), eps))
    if c is not None:
        _run(_adam, (w, g, m, v), n_decay, (c[0],), c[1])

# ----------------------------------------------------------------- update rules defined by users
# An update rule (gpunet.optim.update_rule) is an element function
#     fn(w, g, *state, lr, [t,] *hyper) -> (w, *state)   (just w without state)
# compiled here into the loop the built-in rules use: the same gradient preparation (scale, clamp,
# decay terms, decoupled decay), the same guard, the same two ranges. The loop is generated from
# the rule's names (its arity varies) and compiled once per rule and process.

_RULE_LOOP = '''
def loop(w, g, {states}decay, do_clip, t, consts):
    s, cv, lam, l1, dfac, lr = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
{unpack}    for i in prange(w.size):
        wi = w[i]
        if decay:
            gi = prep_decay_j(g[i], wi, s, cv, do_clip, lam, l1)
            wi = wi * dfac
        else:
            gi = prep_plain_j(g[i], s, cv, do_clip)
        r = elem(wi, gi, {loads}{call})
{stores}
'''


def rule_source(spec, template: str, load: str) -> str:
    """The loop (or kernel) source for ``spec``: its state arrays, its call (positional, in the
    order of the rule's signature), its stores."""
    n = len(spec.state)
    states = "".join(f"{s}, " for s in spec.state)
    loads = "".join(f"{s}[{load}], " for s in spec.state)
    call = ", ".join(["lr"] + (["t"] if spec.uses_t else []) + list(spec.hyper))
    pad = " " * 8
    if n == 0:
        stores = f"{pad}w[i] = r"
    else:
        stores = "\n".join([f"{pad}w[i] = r[0]"] + [f"{pad}{s}[i] = r[{k + 1}]" for k, s in enumerate(spec.state)])
    unpack = "".join(f"    {h} = consts[{6 + j}]\n" for j, h in enumerate(spec.hyper))
    return template.format(states=states, hypers="".join(f", {h}" for h in spec.hyper), unpack=unpack, loads=loads,
                           call=call, stores=stores)


def compile_rule(spec):
    """The tier function of a user's update rule: (w, g, *state, stats, n_decay, lr, weight_decay,
    l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard, **hyper)."""
    scope = {"prange": prange, "prep_decay_j": prep_decay_j, "prep_plain_j": prep_plain_j,
             "elem": njit(inline="always", fastmath=False)(spec.fn)}
    exec(compile(rule_source(spec, _RULE_LOOP, "i"), f"<update rule {spec.name}>", "exec"), scope)
    loop = parallel_njit(fastmath=False)(scope["loop"])

    @serial_below(SERIAL_BELOW)
    def run(w, g, *rest, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard,
            **hyper):
        *states, stats = rest
        c = _constants(w, stats, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard,
                       (lr, *(hyper[h] for h in spec.hyper)))
        if c is not None:
            _run(loop, (w, g, *states), n_decay, (c[0], float(stats[2])), c[1])

    return run
