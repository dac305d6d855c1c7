"""Diagnostics: per-layer activation and gradient statistics, on request.

- ``signal_propagation(model, x)``: one forward and one backward pass through the model,
  returning per layer the mean and standard deviation of its output (activation), the standard
  deviation of the gradient arriving at that output, and the norm of its parameters' gradient.
  In a deep ReLU network with weights drawn from N(0, 1) the activation std grows by about
  √(n/2) per layer and explodes; with a tiny std it shrinks towards 0; with He initialization
  (std √(2/n)) it stays of order 1 — the reason He and Xavier initialization exist.
- ``Diagnostics(every=N)`` (gpunet/train/diagnostics.py, also ``gpunet.callbacks.Diagnostics``):
  a callback that records, every N training steps, each layer's
  activation mean and std, gradient norm ‖∇W‖ and update-to-weight ratio ‖ΔW‖/‖W‖, and warns
  (``GradientWarning``) about vanishing gradients (a layer's norm below ``vanishing`` times the
  largest layer's) and exploding ones (above ``exploding``, or non-finite).
- ``locate_nonfinite(model, loss, x, y)``: where NaN or inf first appears (a parameter, the
  input, a layer's activation, the loss, or a layer's gradient).

Hooks wrap each leaf layer's ``forward``/``backward`` for the duration of a pass only; nothing is
collected (and nothing synchronizes) unless asked.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np

from . import backend

__all__ = ["signal_propagation", "SignalReport", "Diagnostics", "GradientWarning", "locate_nonfinite",
           "trace_nonfinite", "NonFiniteReport", "hooks", "leaf_layers"]


class GradientWarning(UserWarning):
    """A layer's gradient vanished or exploded."""


def leaf_layers(model):
    """(dotted name, layer) for every layer without children, in forward order."""
    return [(name or type(layer).__name__, layer) for name, layer in model.named_layers() if not layer._children]


@contextlib.contextmanager
def hooks(model, forward=None, backward=None):
    """Call ``forward(name, layer, x, y)`` after each leaf layer's forward and
    ``backward(name, layer, dy, dx)`` after its backward, while the context is open. A layer a
    ``Sequential`` would fuse with the ReLU after it (Conv2d, BatchNorm) runs apart from it
    meanwhile, so that both are seen."""
    patched = []
    for name, layer in leaf_layers(model):
        saved = {k: layer.__dict__[k] for k in ("forward", "backward") if k in layer.__dict__}
        f0, b0 = layer.forward, layer.backward

        def f(x, _f=f0, _n=name, _l=layer):
            y = _f(x)
            if forward is not None:
                forward(_n, _l, x, y)
            return y

        def b(dy, _b=b0, _n=name, _l=layer):
            dx = _b(dy)
            if backward is not None:
                backward(_n, _l, dy, dx)
            return dx

        object.__setattr__(layer, "forward", f)
        object.__setattr__(layer, "backward", b)
        layer.__dict__["_observed"] = True  # a Sequential then runs it apart from a fused partner
        patched.append((layer, saved))
    try:
        yield
    finally:
        for layer, saved in patched:
            layer.__dict__.pop("_observed", None)
            for k in ("forward", "backward"):
                layer.__dict__.pop(k, None)
                if k in saved:
                    layer.__dict__[k] = saved[k]


@contextlib.contextmanager
def _preserved(model):
    """Restore buffers (running statistics), layers' random state and the train/eval mode."""
    buffers = {k: v.copy() for k, v in model.named_buffers()}
    rng = {n: layer.get_rng_state() for n, layer in model.named_layers()}
    modes = {n: layer.training for n, layer in model.named_layers()}
    try:
        yield
    finally:
        if buffers:
            model.load_state_dict(buffers, strict=False)
        for n, layer in model.named_layers():
            if rng[n] is not None:
                layer.set_rng_state(rng[n])
            layer.training = modes[n]


def _grad_norm2(layer):
    xp = backend.get_array_module(next(iter(layer._grads.values())))
    return sum(xp.vdot(g.ravel(), g.ravel()) for g in layer._grads.values())


def _finite(a) -> bool:
    return bool(backend.get_array_module(a).isfinite(a).all())


# ---------------------------------------------------------------------- signal propagation
class SignalReport:
    """Per-layer rows: name, type, act_mean, act_std, grad_std (of the gradient at the layer's
    output) and grad_norm (‖∇params‖, NaN for layers without parameters)."""

    def __init__(self, rows):
        self.rows = rows

    def column(self, key, layer_type=None):
        return [r[key] for r in self.rows if layer_type is None or r["type"] == layer_type]

    @property
    def act_std(self):
        return self.column("act_std")

    @property
    def grad_std(self):
        return self.column("grad_std")

    def plot(self, path, **kwargs):
        from .plot import plot_signal

        return plot_signal(self, path, **kwargs)

    def __str__(self):
        w = max([len(r["name"]) + len(r["type"]) + 3 for r in self.rows] + [10])
        lines = [f"{'layer':<{w}} {'act mean':>10} {'act std':>10} {'grad std':>10} {'|grad W|':>10}"]
        for r in self.rows:
            label = f"{r['name']} ({r['type']})"
            lines.append(f"{label:<{w}} {r['act_mean']:>10.3g} {r['act_std']:>10.3g} {r['grad_std']:>10.3g} "
                         f"{r['grad_norm']:>10.3g}")
        return "\n".join(lines)

    __repr__ = __str__


def signal_propagation(model, x, y=None, loss=None, train: bool | None = None, seed: int = 0) -> SignalReport:
    """Push ``x`` through ``model`` and a gradient back; per-layer statistics.

    The gradient at the output is ``loss``'s for targets ``y`` when both are given, else a
    standard normal draw (from its own generator, ``seed``), the usual probe. ``train``: the mode
    to run in (default: the model's current mode). Running statistics, layers' random state and
    modes are restored afterwards; the model's gradient buffer holds this pass's gradients.
    """
    x = backend.to_device(x, model.device, dtype=model.dtype)
    fwd, bwd = {}, {}
    with _preserved(model):
        if train is not None:
            model.train(bool(train))
        with hooks(model,
                   forward=lambda n, l, xi, yo: fwd.__setitem__(n, (l, yo.mean(), yo.std())),
                   backward=lambda n, l, dy, dx: bwd.__setitem__(n, dy.std())):
            out = model(x)
            if loss is not None and y is not None:
                loss(out, backend.to_device(y, model.device))
                dy = loss.backward()
            else:
                g = np.random.default_rng(seed).standard_normal(out.shape)
                dy = backend.to_device(g, model.device, dtype=out.dtype)
            model.backward(dy)
        rows = []
        for name, (layer, m, s) in fwd.items():
            gn = math.sqrt(float(_grad_norm2(layer))) if layer._grads else math.nan
            rows.append({"name": name, "type": type(layer).__name__, "act_mean": float(m), "act_std": float(s),
                         "grad_std": float(bwd.get(name, math.nan)), "grad_norm": gn})
    return SignalReport(rows)


# ---------------------------------------------------------------------- non-finite values
class NonFiniteReport:
    """Where a non-finite value first appeared: ``kind`` is "parameter", "buffer", "input",
    "activation", "loss", "gradient", "update" or "none"; ``layer`` the dotted layer name;
    ``step`` the training step, when known."""

    def __init__(self, kind, layer=None, layer_type=None, detail="", step=None):
        self.kind, self.layer, self.layer_type, self.detail, self.step = kind, layer, layer_type, detail, step

    def __str__(self):
        at = f"at step {self.step}: " if self.step is not None else ""
        if self.kind == "none":
            return at + self.detail
        where = f" of layer {self.layer!r} ({self.layer_type})" if self.layer is not None else ""
        return f"{at}non-finite {self.kind}{where}: {self.detail}"

    __repr__ = __str__


def _count_bad(a) -> int:
    xp = backend.get_array_module(a)
    return int(xp.count_nonzero(~xp.isfinite(a)))


class _Watch:
    """Hooks that note the first layer whose output is non-finite from a finite input, or whose
    gradient is non-finite from a finite incoming gradient."""

    def __init__(self):
        self.found = None

    def forward(self, n, layer, xi, yo):
        if self.found is None and _finite(xi) and not _finite(yo):
            self.found = NonFiniteReport("activation", n, type(layer).__name__,
                                         f"{_count_bad(yo)} of {yo.size} outputs are non-finite from a finite input")

    def backward(self, n, layer, dy, dx):
        if self.found is not None or not _finite(dy):
            return
        for k, g in layer._grads.items():
            if not _finite(g):
                self.found = NonFiniteReport("gradient", n, type(layer).__name__,
                                             f"the gradient of {k} holds {_count_bad(g)} non-finite values "
                                             "from a finite incoming gradient")
                return
        if dx is not None and not _finite(dx):
            self.found = NonFiniteReport("gradient", n, type(layer).__name__,
                                         "the gradient passed to the layer below is non-finite from a finite "
                                         "incoming gradient")

    def step(self, model, loss, x, y):
        """One forward and backward pass under watch; a report or None."""
        if not _finite(x):
            return NonFiniteReport("input", detail=f"the input batch holds {_count_bad(x)} non-finite values")
        with hooks(model, forward=self.forward, backward=self.backward):
            out = model(x)
            if self.found is not None:
                return self.found
            value = loss(out, y)
            if not _finite(backend.get_array_module(out).asarray(value)):
                return NonFiniteReport("loss", detail=f"the loss is {float(value)} from finite outputs")
            model.backward(loss.backward())
        return self.found


def _owners(model):
    owner = {}
    for lname, layer in model.named_layers():
        for k in list(layer._params) + list(layer._buffers):
            owner[f"{lname}.{k}" if lname else k] = (lname, type(layer).__name__)
    return owner


def _bad_state(model):
    """(kind, array name, layer name, layer type, count, size) of the first non-finite parameter
    or buffer, or None."""
    owner = _owners(model)
    for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, a in items:
            bad = _count_bad(a)
            if bad:
                return (kind, name) + owner.get(name, (None, None)) + (bad, a.size)
    return None


def locate_nonfinite(model, loss, x, y) -> NonFiniteReport:
    """Find the first non-finite value in the model's present state: its parameters (layer
    order), its buffers, the input batch, then — running the batch forward and backward — the
    first layer whose output is non-finite from a finite input, the loss, and the first layer
    (backward order) whose gradient is non-finite from a finite incoming gradient. Running
    statistics, random state and modes are restored afterwards."""
    bad = _bad_state(model)
    if bad is not None:
        kind, name, lname, ltype, count, size = bad
        return NonFiniteReport(kind, lname, ltype, f"{name} holds {count} of {size} non-finite values (written "
                               "by an update from a non-finite gradient, or a learning rate too large)")
    if x is None:
        return NonFiniteReport("none", detail="no batch to examine")
    with _preserved(model):
        found = _Watch().step(model, loss, x, y)
    if found is not None:
        return found
    return NonFiniteReport("none", detail="every parameter, activation and gradient is finite on this batch; "
                           "the non-finite loss came from another batch")


def trace_nonfinite(model, loss, optimizer, steps, first_step: int = 0) -> NonFiniteReport:
    """Replay training steps ``steps`` = [(x, y, lr), ...] from the model's and optimizer's
    present state (a snapshot taken before them) — model.train(), forward, loss, backward,
    optimizer.step(), exactly as the Trainer — watching every layer, and report the first step
    and layer where a non-finite activation, loss, gradient or parameter appears. The model is
    left as it was just before that step's update."""
    bad = _bad_state(model)
    if bad is not None:
        kind, name, lname, ltype, count, size = bad
        return NonFiniteReport(kind, lname, ltype, f"{name} already held {count} of {size} non-finite values "
                               "before these steps", step=first_step)
    for k, (x, y, lr) in enumerate(steps):
        model.train()
        found = _Watch().step(model, loss, x, y)
        if found is not None:
            found.step = first_step + k
            return found
        optimizer.lr = lr
        optimizer.step()
        bad = _bad_state(model)
        if bad is not None:
            kind, name, lname, ltype, count, size = bad
            return NonFiniteReport("update", lname, ltype, f"every activation and gradient was finite, but the "
                                   f"optimizer's update made {count} of {size} values of {name} non-finite "
                                   f"(learning rate {lr:g} too large?)", step=first_step + k)
    return NonFiniteReport("none", detail=f"replaying steps {first_step}..{first_step + len(steps) - 1} "
                           "produced no non-finite value (a non-deterministic kernel?)")


def __getattr__(name):
    if name == "Diagnostics":  # the callback lives with the other callbacks, under train/
        from .train.diagnostics import Diagnostics

        return Diagnostics
    raise AttributeError(f"module 'gpunet.diagnostics' has no attribute {name!r}")
