"""Fused optimizer updates with numba.cuda: one grid-stride kernel per rule.

Each thread reads ``stats`` (skip flag, Σg², step count) from device memory, derives the
gradient scale and the bias corrections in float64, and updates its elements with the element
functions of numba_cpu.py (one copy of the arithmetic for both Numba tiers), in float64 math on
the arena's values. Constants that do not depend on the device-side step count (1 − β, 1 − α,
1 − ηλ_d) are computed on the host in float64. Formulas: see reference.py. NumPy arrays under the
CUDA simulator, CuPy arrays on a GPU (no host sync).
"""
from __future__ import annotations

import math

import numpy as np

from ..common.numba_cuda import cuda, device_view as _dev

from . import numba_cpu as _cpu

THREADS = 128
MAX_BLOCKS = 1024

_d = cuda.jit(device=True)
prep_plain, prep_decay, sgd_elem, momentum_elem, adagrad_elem, rmsprop_elem, adam_elem = map(_d, _cpu.ELEMENTS)


@cuda.jit(device=True)
def _scale(stats, clip_norm, norm_eps):
    s = 1.0
    norm = math.sqrt(stats[0])
    if clip_norm > 0.0 and norm > clip_norm:
        s = clip_norm / norm
    if norm_eps > 0.0:
        s = s / (s * norm + norm_eps)
    return s


@cuda.jit(device=True)
def _grad(g, w, i, nd, s, cv, do_clip, lam, l1):
    if i < nd:
        return prep_decay(g, w, s, cv, do_clip, lam, l1)
    return prep_plain(g, s, cv, do_clip)


@cuda.jit(device=True)
def _decayed(w, i, nd, dfac):
    return w * dfac if i < nd else w * 1.0


@cuda.jit
def _sgd(w, g, stats, nd, lr, lam, l1, dfac, clip_norm, cv, norm_eps, guard):
    if guard != 0 and stats[1] != 0.0:
        return
    s = _scale(stats, clip_norm, norm_eps)
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        gi = _grad(g[i], wi, i, nd, s, cv, cv > 0.0, lam, l1)
        w[i] = sgd_elem(_decayed(wi, i, nd, dfac), gi, lr)


@cuda.jit
def _momentum(w, g, buf, stats, nd, lr, lam, l1, dfac, clip_norm, cv, norm_eps, guard, mu, nesterov):
    if guard != 0 and stats[1] != 0.0:
        return
    s = _scale(stats, clip_norm, norm_eps)
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        gi = _grad(g[i], wi, i, nd, s, cv, cv > 0.0, lam, l1)
        a, b = momentum_elem(_decayed(wi, i, nd, dfac), gi, buf[i], lr, mu, nesterov != 0)
        w[i] = a
        buf[i] = b


@cuda.jit
def _adagrad(w, g, acc, stats, nd, lr, lam, l1, dfac, clip_norm, cv, norm_eps, guard, lr_decay, eps):
    if guard != 0 and stats[1] != 0.0:
        return
    s = _scale(stats, clip_norm, norm_eps)
    clr = lr / (1.0 + (stats[2] - 1.0) * lr_decay)
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        gi = _grad(g[i], wi, i, nd, s, cv, cv > 0.0, lam, l1)
        a, b = adagrad_elem(_decayed(wi, i, nd, dfac), gi, acc[i], clr, eps)
        w[i] = a
        acc[i] = b


@cuda.jit
def _rmsprop(w, g, sq, ga, buf, stats, nd, lr, lam, l1, dfac, clip_norm, cv, norm_eps, guard, alpha, oma, eps,
             mu, centered):
    if guard != 0 and stats[1] != 0.0:
        return
    s = _scale(stats, clip_norm, norm_eps)
    use_mom = mu > 0.0
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        gi = _grad(g[i], wi, i, nd, s, cv, cv > 0.0, lam, l1)
        gb = ga[i] * 1.0 if centered != 0 else 0.0
        bb = buf[i] * 1.0 if use_mom else 0.0
        a, q, gb, bb = rmsprop_elem(_decayed(wi, i, nd, dfac), gi, sq[i] * 1.0, gb, bb, lr, alpha, oma, eps, mu,
                                    centered != 0, use_mom)
        w[i] = a
        sq[i] = q
        if centered != 0:
            ga[i] = gb
        if use_mom:
            buf[i] = bb


@cuda.jit
def _adam(w, g, m, v, stats, nd, lr, lam, l1, dfac, clip_norm, cv, norm_eps, guard, b1, omb1, b2, omb2, eps):
    if guard != 0 and stats[1] != 0.0:
        return
    s = _scale(stats, clip_norm, norm_eps)
    t = stats[2]
    step_size = lr / (1.0 - math.pow(b1, t))
    sqrt_bc2 = math.sqrt(1.0 - math.pow(b2, t))
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        gi = _grad(g[i], wi, i, nd, s, cv, cv > 0.0, lam, l1)
        a, b, c = adam_elem(_decayed(wi, i, nd, dfac), gi, m[i], v[i], b1, omb1, b2, omb2, step_size, sqrt_bc2,
                            eps)
        w[i] = a
        m[i] = b
        v[i] = c

# ----------------------------------------------------------------- host part


def _launch(n):
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS)), THREADS


def _common(w, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard):
    f = np.float64
    return (_dev(stats), np.int64(min(int(n_decay), w.size)), f(lr), f(weight_decay), f(l1),
            f(1.0 - lr * decoupled_wd), f(clip_norm), f(clip_value), f(norm_eps), np.int32(1 if guard else 0))


def sgd(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard):
    _sgd[_launch(w.size)](_dev(w), _dev(g), *_common(w, stats, n_decay, lr, weight_decay, l1, decoupled_wd,
                                                     clip_norm, clip_value, norm_eps, guard))


def momentum(w, g, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
             guard, mu, nesterov):
    _momentum[_launch(w.size)](_dev(w), _dev(g), _dev(buf),
                               *_common(w, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
                                        clip_value, norm_eps, guard), np.float64(mu), np.int32(bool(nesterov)))


def adagrad(w, g, acc, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
            guard, lr_decay, eps):
    _adagrad[_launch(w.size)](_dev(w), _dev(g), _dev(acc),
                              *_common(w, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
                                       clip_value, norm_eps, guard), np.float64(lr_decay), np.float64(eps))


def rmsprop(w, g, sq, ga, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
            norm_eps, guard, alpha, eps, mu, centered):
    f = np.float64
    _rmsprop[_launch(w.size)](_dev(w), _dev(g), _dev(sq), _dev(ga), _dev(buf),
                              *_common(w, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
                                       clip_value, norm_eps, guard),
                              f(alpha), f(1.0 - alpha), f(eps), f(mu), np.int32(bool(centered)))


def adam(w, g, m, v, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
         guard, beta1, beta2, eps):
    f = np.float64
    _adam[_launch(w.size)](_dev(w), _dev(g), _dev(m), _dev(v),
                           *_common(w, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
                                    norm_eps, guard),
                           f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2), f(eps))

# ----------------------------------------------------------------- update rules defined by users
# The kernel generated from a rule's element function (numba_cpu.py explains the form): one
# grid-stride kernel per rule, compiled on its first launch; it reads the skip flag, the norm and
# the step count t from ``stats`` in device memory, like the built-in rules.

_RULE_KERNEL = '''
def kernel(w, g, {states}stats, nd, lr, lam, l1, dfac, clip_norm, cv, norm_eps, guard{hypers}):
    if guard != 0 and stats[1] != 0.0:
        return
    s = _scale(stats, clip_norm, norm_eps)
    t = stats[2]
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = w[i]
        gi = _grad(g[i], wi, i, nd, s, cv, cv > 0.0, lam, l1)
        wi = _decayed(wi, i, nd, dfac)
        r = elem(wi, gi, {loads}{call})
{stores}
'''


def compile_rule(spec):
    """The tier function of a user's update rule (the signature of numba_cpu.compile_rule)."""
    scope = {"cuda": cuda, "_scale": _scale, "_grad": _grad, "_decayed": _decayed,
             "elem": cuda.jit(device=True)(spec.fn)}
    source = _cpu.rule_source(spec, _RULE_KERNEL, "i")
    exec(compile(source, f"<update rule {spec.name}>", "exec"), scope)
    kernel = cuda.jit(scope["kernel"])

    def run(w, g, *rest, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard,
            **hyper):
        *states, stats = rest
        kernel[_launch(w.size)](_dev(w), _dev(g), *map(_dev, states),
                                *_common(w, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
                                         clip_value, norm_eps, guard),
                                *(np.float64(hyper[h]) for h in spec.hyper))

    return run
