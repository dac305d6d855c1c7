"""Dropout layers: inverted dropout on counter-based random bits, per element (Dropout) or per
channel (Dropout2d)."""
from __future__ import annotations

import contextlib
import math
import numbers

from .. import backend
from ..ops import registry
from ..ops.dropout import check_p, dropout_backward, dropout_forward
from .base import Layer
from .checks import check_input

_counter = {"rng": None, "next": 0}
_offset = {"rows": 0}
_PASS = ()  # the saved state of a forward that was the identity (eval mode, p = 0): dx = dy


@contextlib.contextmanager
def batch_offset(rows: int):
    """Inside, a training forward takes its input (N, ...) as rows [rows, rows + N) of a larger
    batch and draws those rows of that batch's mask: element offset rows · (elements per row) in
    the dropout stream (data-parallel shards). The previous offset is restored after."""
    if isinstance(rows, bool) or not isinstance(rows, numbers.Integral):
        raise TypeError(f"batch_offset(rows): rows must be an integer, got {type(rows).__name__}")
    if rows < 0:
        raise ValueError(f"batch_offset(rows): rows must be non-negative, got {rows}")
    previous, _offset["rows"] = _offset["rows"], int(rows)
    try:
        yield
    finally:
        _offset["rows"] = previous


def current_batch_offset() -> int:
    """The rows of the innermost active ``batch_offset`` (0 outside)."""
    return _offset["rows"]


def _next_layer_id() -> int:
    """Dropout layers are numbered 0, 1, 2, … in construction order, counting from the last
    ``gpunet.seed()`` (or ``backend.set_rng_state``), so that one seed and one model definition
    give the same masks in every run and on every device."""
    r = backend.rng()
    if _counter["rng"] is not r:
        _counter["rng"], _counter["next"] = r, 0
    i = _counter["next"]
    _counter["next"] += 1
    return i


class Dropout(Layer):
    """Inverted dropout. Training: y = x·m/(1 − p), m_i ~ Bernoulli(1 − p); dx = dy·m/(1 − p).
    Evaluation (and p = 0): y = x, dx = dy.

    The mask of a training forward is a pure function of (``gpunet.seed``, ``layer_id``, ``step``,
    element index) through Philox4x32-10 (kernels/common/philox.py), the same on the CPU and the
    GPU. ``step`` counts this layer's training forwards and advances after each one;
    ``get_rng_state()``/``set_rng_state()`` save and restore it (and ``layer_id``), so a
    checkpoint resumes the same mask sequence and a repeated forward can reuse a mask. The
    backward pass reads a 1-bit-per-element mask kept from the forward. A shard of a global
    batch that starts at row r, inside ``batch_offset(r)``, draws the rows of the whole batch's
    mask (element offset r · (elements per row) in the stream).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = check_p(p, "Dropout")
        self.layer_id = _next_layer_id()
        self.step = 0
        self._saved = None  # until the first forward; then _PASS, or (mask, shape, dtype) of a training forward

    def forward(self, x):
        x = check_input(self, x)
        if not self.training or self.p == 0.0:
            self._saved = _PASS
            return x
        rows = _offset["rows"]
        y, mask = dropout_forward(x, self.p, backend.get_seed(), self.layer_id, self.step, check=registry.DEBUG,
                                  offset=rows * math.prod(x.shape[1:]) if rows else 0)
        self._saved = (mask, tuple(x.shape), x.dtype)
        self.step += 1
        return y

    def _passes_through(self, dy) -> bool:
        """Whether the last forward was the identity (then dx = dy); checks dy's shape otherwise."""
        saved = self._saved
        if saved is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        if saved is _PASS:
            return True
        if tuple(dy.shape) != saved[1]:
            raise ValueError(f"{self.name}: dy has shape {tuple(dy.shape)}, the forward's output {saved[1]}")
        return False

    def backward(self, dy):
        if self._passes_through(dy):
            return dy
        mask, _, dtype = self._saved
        if dy.dtype != dtype:
            raise TypeError(f"{self.name}: dy has dtype {dy.dtype}, the forward's output {dtype}")
        return dropout_backward(dy, mask, self.p, check=registry.DEBUG)

    def get_rng_state(self):
        return {"layer_id": self.layer_id, "step": self.step}

    def set_rng_state(self, state) -> None:
        self.step = int(state["step"])
        self.layer_id = int(state.get("layer_id", self.layer_id))

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Channel dropout, as PyTorch's Dropout2d: each channel of each sample, x[n, c, ...], is kept
    whole (×1/(1 − p)) or zeroed whole, with probability p; for inputs (N, C, H, W), or any
    (N, C, ...) — the trailing axes are the channel's. y = x·s[n, c], dx = dy·s[n, c], s ∈ {0,
    1/(1 − p)} drawn as ``Dropout`` draws an (N, C) mask (the same seed, layer numbering and step
    counting). Evaluation (and p = 0): y = x.
    """

    def forward(self, x):
        x = check_input(self, x)
        if x.ndim < 3:
            raise ValueError(f"{self.name}: expected input of shape (N, C, H, W) (or (N, C, ...)), got "
                             f"{tuple(x.shape)}; Dropout drops single elements")
        if not self.training or self.p == 0.0:
            self._saved = _PASS
            return x
        xp = backend.get_array_module(x)
        scale, _ = dropout_forward(xp.ones(x.shape[:2], dtype=x.dtype), self.p, backend.get_seed(),
                                   self.layer_id, self.step, check=registry.DEBUG,
                                   offset=_offset["rows"] * x.shape[1])
        scale = scale.reshape(scale.shape + (1,) * (x.ndim - 2))  # 0 or 1/(1 − p) per (n, c)
        self._saved = (scale, tuple(x.shape), x.dtype)
        self.step += 1
        return x * scale

    def backward(self, dy):
        return dy if self._passes_through(dy) else dy * self._saved[0]
