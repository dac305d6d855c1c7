"""CUDA C tier of the fused optimizer updates (optim_update.cu through cupy.RawModule).

One launch per step; the step's scalars are kernel arguments (changing lr recompiles nothing);
skip flag, norm and step count are read from ``stats`` on the device: no host sync.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.cupy import THREADS, aligned, compiled, grid, sourced, suffix

_f = np.float64
source = sourced(Path(__file__).with_name("optim_update.cu"))  # the .cu file, shared headers pasted in
device = None  # None: the current GPU; tests may put a CPU emulator here


def _device():
    return device if device is not None else compiled(source)


def _launch(rule, w, arrays, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
            guard, extra):
    dev = _device()
    n = w.size
    vec = aligned(dev, *arrays)
    blocks = grid(dev, n // 4 if vec else n)
    args = (*arrays, stats, np.int64(n), np.int64(min(int(n_decay), n)), vec, _f(lr), _f(weight_decay),
            _f(l1), _f(1.0 - lr * decoupled_wd), _f(clip_norm), _f(clip_value), _f(norm_eps),
            np.int32(1 if guard else 0), *extra)
    dev.kernel(f"{rule}_{suffix(w.dtype)}")((blocks,), (THREADS,), args)


def sgd(w, g, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps, guard):
    _launch("sgd", w, (w, g), stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
            guard, ())


def momentum(w, g, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
             guard, mu, nesterov):
    _launch("momentum", w, (w, g, buf), stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
            norm_eps, guard, (_f(mu), np.int32(bool(nesterov))))


def adagrad(w, g, acc, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
            guard, lr_decay, eps):
    _launch("adagrad", w, (w, g, acc), stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
            norm_eps, guard, (_f(lr_decay), _f(eps)))


def rmsprop(w, g, sq, ga, buf, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
            norm_eps, guard, alpha, eps, mu, centered):
    _launch("rmsprop", w, (w, g, sq, ga, buf), stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm,
            clip_value, norm_eps, guard, (_f(alpha), _f(1.0 - alpha), _f(eps), _f(mu), np.int32(bool(centered))))


def adam(w, g, m, v, stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value, norm_eps,
         guard, beta1, beta2, eps):
    _launch("adam", w, (w, g, m, v), stats, n_decay, lr, weight_decay, l1, decoupled_wd, clip_norm, clip_value,
            norm_eps, guard, (_f(beta1), _f(1.0 - beta1), _f(beta2), _f(1.0 - beta2), _f(eps)))
