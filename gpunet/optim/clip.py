"""Clipping by global norm on its own (the optimizers do it inside their step with ``clip_norm``)."""
from __future__ import annotations

from .. import backend
from ..ops.global_norm import grad_stats, scale_by_norm
from .base import as_model, check_number


def clip_grad_norm(model, max_norm: float, *, tier: str | None = None):
    """Scale the gradients in place so that their global L2 norm is at most θ = ``max_norm``:
    g ← g·θ/‖g‖ when ‖g‖ > θ. ``model`` is a gpunet model or its ``parameters()`` (the arena's
    gradients, frozen layers' left out), or a flat gradient array. Returns ‖g‖ before clipping as
    a 0-d float64 device array (like torch.nn.utils.clip_grad_norm_, without its +1e-6); two
    launches, no host sync. A NaN or Inf norm leaves the gradients as they are."""
    max_norm = check_number(max_norm, "max_norm", "clip_grad_norm", lo=0.0, lo_open=True)
    if backend.is_array(model):
        grads = model
    else:
        arena = as_model(model, "clip_grad_norm").arena
        grads = arena.trainable(arena.grads)  # frozen layers' gradients left out
    stats = grad_stats(grads, tier=tier)
    scale_by_norm(grads, stats, max_norm, tier=tier)
    return backend.get_array_module(grads).sqrt(stats[:1]).reshape(())
