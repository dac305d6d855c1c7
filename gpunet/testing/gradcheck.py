"""Finite-difference gradient checking of a layer's explicit backward, in float64.

With a fixed random projection r, take L(x, θ) = Σ r · layer(x). The analytic gradients come
from ``backward(r)``; the numeric ones from central differences
(L(v + ε) − L(v − ε)) / 2ε, element by element, for the input and every parameter.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import backend


class GradcheckError(AssertionError):
    pass


def _numeric(f, arr, idx, eps):
    old = arr[idx].copy()
    arr[idx] = old + eps
    fp = f()
    arr[idx] = old - eps
    fm = f()
    arr[idx] = old
    return (fp - fm) / (2 * eps)


def gradcheck(layer, x, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7,
              max_checks: int = 200, seed: int = 0, check_input: bool = True,
              raise_error: bool = True) -> dict:
    """Compare ``layer.backward`` with central differences; return, per array ("input" and each
    parameter's name), the worst error relative to the tolerance,
    max |analytic − numeric| / (atol + rtol·|numeric|): at most 1 passes.

    The layer is copied and cast to float64 (the caller's layer is left alone). At most
    ``max_checks`` randomly chosen elements of each array are perturbed. Raises
    ``GradcheckError`` naming the array and element when |analytic − numeric| exceeds
    atol + rtol·|numeric| (unless ``raise_error=False``).
    """
    layer = copy.deepcopy(layer)
    layer.to(dtype=np.float64)
    xp = backend.get_array_module(x)
    x = xp.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    rng_state = layer_rng_states(layer)

    def run(inp):
        restore_rng_states(layer, rng_state)
        return layer(inp)

    y = run(x)
    r = xp.asarray(rng.standard_normal(y.shape))

    def loss():
        return float((run(x) * r).sum())

    run(x)
    dx = layer.backward(r)
    analytic = {"input": dx} if check_input else {}
    for name, g in layer.named_gradients():
        analytic[name] = g.copy()
    arrays = {"input": x} if check_input else {}
    arrays.update(dict(layer.named_parameters()))

    report = {}
    for name, arr in arrays.items():
        grad = backend.to_numpy(analytic[name])
        n = arr.size
        picks = rng.choice(n, size=min(n, max_checks), replace=False) if n else []
        worst = 0.0
        for flat in picks:
            idx = np.unravel_index(int(flat), arr.shape)
            num = _numeric(loss, arr, idx, eps)
            ana = float(grad[idx])
            err = abs(ana - num)
            worst = max(worst, err / (atol + rtol * abs(num)))
            if raise_error and err > atol + rtol * abs(num):
                raise GradcheckError(
                    f"gradcheck: {type(layer).__name__} gradient of {name!r} at {tuple(int(i) for i in idx)}: "
                    f"backward gives {ana:.10g}, finite differences give {num:.10g}"
                )
        report[name] = worst
    return report


def layer_rng_states(layer):
    return {name: l.get_rng_state() for name, l in layer.named_layers()}


def restore_rng_states(layer, states):
    for name, l in layer.named_layers():
        if states.get(name) is not None:
            l.set_rng_state(states[name])
