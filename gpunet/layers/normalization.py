"""Batch normalization layers: BatchNorm1d for (N, C) or (N, C, L), BatchNorm2d for (N, C, H, W)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from ..ops import registry
from ..ops.batchnorm import batch_norm_backward, batch_norm_eval, batch_norm_train
from . import sync_batchnorm
from .base import Layer
from .checks import check_input


def _count(nbt) -> None:
    """num_batches_tracked += 1; on the CPU as a scalar store (a ufunc on a 0-d array costs 1.3 µs)."""
    if type(nbt) is np.ndarray:
        nbt[()] = nbt[()] + 1
    else:
        nbt += 1


class _BatchNorm(Layer):
    """y = γ·(x − μ)/√(σ² + ε) + β per channel (axis 1), PyTorch's semantics and names.

    Training: μ, σ² are the batch's mean and biased variance over every axis but 1, and the
    running statistics move by running = (1 − momentum)·running + momentum·batch, with the
    unbiased variance σ²·n/(n − 1) (momentum=None: the cumulative average, factor
    1/num_batches_tracked). Evaluation: μ, σ² are the running statistics (or the batch's, with
    ``track_running_stats=False``). Backward: dβ = Σdy, dγ = Σdy·x̂,
    dx = (γ·invstd/n)·(n·dy − dβ − x̂·dγ) (γ·invstd·dy with running statistics).
    γ ("weight") and β ("bias") take no weight decay by default; "running_mean", "running_var"
    and "num_batches_tracked" are buffers, as in PyTorch's state dict. In a ``Sequential``, a
    BatchNorm followed by a ``ReLU`` runs as one step (``forward_fused``): max(y, 0) in the
    normalizing pass, the ReLU's mask read by the backward's passes, the same numbers.

    Data-parallel training: by default each rank normalizes with its own shard's statistics (so
    a 2-rank run with global batch B normalizes over B/2 samples, unlike one process with B).
    ``sync=comm`` (a ``gpunet.distributed`` communicator) reduces the per-channel sums over the
    ranks in training (layers/sync_batchnorm.py): the global batch's statistics, forward,
    backward and running statistics as one process computes them, to float rounding.
    """

    _ndims: tuple = ()
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype="float32", sync=None):
        super().__init__()
        name = type(self).__name__
        if sync is not None and not hasattr(sync, "allreduce"):
            raise TypeError(f"{name}(sync): expected a communicator from gpunet.distributed.init(), got "
                            f"{type(sync).__name__}")
        self.sync = sync
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{name}: eps must be a positive number, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0.0 <= momentum <= 1.0):
            raise ValueError(f"{name}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}: dtype must be float32 or float64, got {dtype}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self._dtype0 = dtype
        xp = backend.xp
        C = self.num_features
        if self.affine:
            self.add_parameter("weight", xp.ones(C, dtype=dtype), decay=False)
            self.add_parameter("bias", xp.zeros(C, dtype=dtype), decay=False)
        if self.track_running_stats:
            self.add_buffer("running_mean", xp.zeros(C, dtype=dtype))
            self.add_buffer("running_var", xp.ones(C, dtype=dtype))
            self.add_buffer("num_batches_tracked", xp.zeros((), dtype=np.int64))
        self._saved = None
        self._relu_y = None  # the output of a forward with a fused ReLU, whose mask backward applies
        self._tracked = None  # num_batches_tracked on the host (momentum=None reads it once)
        self._dtype = self._float_dtype()

    def _float_dtype(self):
        for store in (self._params, self._buffers):
            for a in store.values():
                if a.dtype.kind == "f":
                    return a.dtype
        return None

    def _on_moved(self):
        self._tracked = None
        self._saved = self._relu_y = None
        self._dtype = self._float_dtype()

    def _on_state_loaded(self):
        self._tracked = None

    def _affine(self, x):
        """(γ, β), or constant ones and zeros of x's dtype and device without affine."""
        return (self.weight, self.bias) if self.affine else self._unit_affine(x)

    def _unit_affine(self, x):
        xp = backend.get_array_module(x)
        key = (backend.device_of(x), x.dtype)
        if getattr(self, "_unit", (None,))[0] != key:
            self._unit = (key, xp.ones(self.num_features, dtype=x.dtype), xp.zeros(self.num_features, dtype=x.dtype))
        return self._unit[1], self._unit[2]

    def forward(self, x):
        return self.forward_fused(x)

    def forward_fused(self, x, relu: bool = False):
        """The normalized output, with max(·, 0) applied in the same pass when ``relu``; the next
        backward then applies that ReLU's mask too. (``Sequential`` calls this for BatchNorm → ReLU.)"""
        x = check_input(self, x, dtype=self._dtype)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            self._shape_error(x)
        weight, bias = self._affine(x)
        if not self.training and self.track_running_stats:
            y = batch_norm_eval(x, weight, bias, self.running_mean, self.running_var, self.eps, check=registry.DEBUG,
                                relu=relu)
            self._saved = (x, None, None, False)
            self._relu_y = y if relu else None
            return y
        if x.size // self.num_features < 2:
            raise ValueError(
                f"{self.name}: batch statistics need more than one value per channel, got input shape "
                f"{tuple(x.shape)} (use a batch of at least 2, or eval mode)")
        update = self.training and self.track_running_stats
        factor = 0.0 if not update else self.momentum
        nbt = self.num_batches_tracked if update else None
        if update and self.momentum is None:  # cumulative average: 1/count, counted on the host too
            if self._tracked is None:
                self._tracked = int(nbt)  # one read, after construction, a move or a load
            _count(nbt)
            self._tracked += 1
            factor = 1.0 / self._tracked
        if self.training and self.sync is not None and self.sync.size > 1:
            y = sync_batchnorm.forward(self, x, weight, bias, factor, update, relu)
            if update and self.momentum is not None:
                _count(nbt)
            self._relu_y = y if relu else None
            return y
        y, mean, invstd = batch_norm_train(
            x, weight, bias, self.running_mean if update else None, self.running_var if update else None,
            self.eps, factor, update, None, registry.DEBUG, relu)
        if update and self.momentum is not None:  # after the launches: no delay before the first kernel
            _count(nbt)
        d = self.__dict__  # plain saved state: stored without __setattr__'s look for layers in a tuple
        d["_saved"] = (x, mean, invstd, True)
        d["_relu_y"] = y if relu else None
        return y

    def _shape_error(self, x):
        if x.ndim not in self._ndims:
            raise ValueError(f"{self.name}: expected input of shape {self._shape_text}, got {tuple(x.shape)}")
        raise ValueError(f"{self.name}: expected {self.num_features} channels (axis 1), got input shape "
                         f"{tuple(x.shape)}")

    def backward(self, dy):
        if self._saved is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        x, mean, invstd, batch_stats = self._saved[:4]
        if not batch_stats:  # running statistics, fixed: computed here, in float64
            xp = backend.get_array_module(x)
            mean = self.running_mean.astype(np.float64)
            invstd = 1.0 / xp.sqrt(self.running_var.astype(np.float64) + self.eps)
        if self.affine:
            weight, dw, db = self.weight, self._grads["weight"], self._grads["bias"]
        else:
            weight, dw, db = self._unit_affine(x)[0], None, None
        if dy.shape != x.shape:
            raise ValueError(f"{self.name}.backward: dy has shape {tuple(dy.shape)}, expected {tuple(x.shape)} "
                             "(the shape of the forward's output)")
        if batch_stats == "sync":
            return sync_batchnorm.backward(self, dy, weight, dw, db)
        return batch_norm_backward(dy, x, weight, mean, invstd, batch_stats, dw, db, None, registry.DEBUG,
                                   self._relu_y)[0]

    def sample_values_per_channel(self):
        """Values per channel in one sample of the last input (1 for (N, C), L or H·W); None
        before the first forward. A training batch needs more than one value per channel."""
        return None if self._saved is None else math.prod(self._saved[0].shape[2:])

    def extra_repr(self):
        out = f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum}"
        if not self.affine:
            out += ", affine=False"
        if not self.track_running_stats:
            out += ", track_running_stats=False"
        if self.sync is not None:
            out += f", sync={self.sync.size} ranks"
        return out


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs; statistics per channel C."""

    _ndims = (2, 3)
    _shape_text = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) inputs; statistics per channel C."""

    _ndims = (4,)
    _shape_text = "(N, C, H, W)"
