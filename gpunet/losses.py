"""Losses. ``loss(output, target)`` returns a 0-d array on the output's device; ``backward()``
returns the gradient with respect to the output. Reduction is the mean, as in PyTorch.

``loss(output, target)`` checks its arguments; ``loss.forward_trusted(output, target)`` is the
same computation for a caller that has checked them (the Trainer checks its data set once per
``fit``/``evaluate``), with no host synchronization."""
from __future__ import annotations

import numpy as np

from . import backend
from .ops import cross_entropy as _xent


class Loss:
    def __call__(self, output, target):
        return self.forward(output, target)

    def forward_trusted(self, output, target):
        """``forward`` without the checks the caller has made (by default, ``forward`` itself)."""
        return self.forward(output, target)

    def _saved(self, name: str):
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before a forward pass: "
                               f"compute the loss first, value = loss(output, target)")
        return value

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """Softmax cross-entropy from logits, with integer class labels.

    L = −(1/N) Σ_n log softmax(z_n)[y_n], computed as logsumexp(z_n) − z_n[y_n] with the row
    maximum subtracted first (stable for any logits).  ∂L/∂z = (softmax(z) − onehot(y)) / N.

    ``weight`` (one per class, w) and ``label_smoothing`` (ε), as PyTorch's: with ℓ_{n,c} =
    −log softmax(z_n)[c] and W = Σ_n w[y_n] (N without weights; 1 with reduction "sum"),
    L = [(1 − ε) Σ_n w[y_n] ℓ_{n,y_n} + (ε/C) Σ_n Σ_c w[c] ℓ_{n,c}] / W, and
    ∂L/∂z_n = [(1 − ε) w[y_n] (p_n − e_{y_n}) + (ε/C)((Σ_c w[c]) p_n − w)] / W, p_n = softmax(z_n).

    ``check_labels`` (default True) verifies that labels lie in [0, C) and raises otherwise; on
    the GPU that costs a host synchronization per call. With ``check_labels=False`` nothing is
    read on the host, and a label outside [0, C) makes its row's loss and gradient NaN (never a
    wrapped index into another class), which the optimizer's non-finite guard and the Trainer
    report. The Trainer checks a data set's labels once, before training on it, and calls
    ``forward_trusted``, which skips both.

    Without class weights, float32 and float64 logits run the ``cross_entropy`` kernel op
    (gpunet/ops/cross_entropy.py): loss and gradient in one pass, the gradient kept for
    ``backward``, which returns it (the same array until the next forward).
    """

    _probs = _grad = None

    def __init__(self, reduction: str = "mean", check_labels: bool = True, weight=None, label_smoothing: float = 0.0):
        who = type(self).__name__
        if reduction not in ("mean", "sum"):
            raise ValueError(f"{who}: reduction must be 'mean' or 'sum', got {reduction!r}")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"{who}: label_smoothing must lie in [0, 1], got {label_smoothing!r}")
        if weight is not None:
            host = np.asarray(backend.to_numpy(weight), dtype=np.float64)
            if host.ndim != 1 or host.size == 0 or not np.isfinite(host).all() or (host < 0).any():
                raise ValueError(f"{who}: weight must be a 1-D array of finite class weights >= 0, got "
                                 f"{host.shape if host.ndim != 1 else host}")
            weight = host
        self.reduction = reduction
        self.check_labels = check_labels
        self.weight, self.label_smoothing = weight, float(label_smoothing)
        self._device_weight = None

    def _validate(self, logits, y):
        if logits.ndim != 2:
            raise ValueError(f"CrossEntropy: expected logits of shape (N, C), got {tuple(logits.shape)}")
        if not np.issubdtype(logits.dtype, np.floating):
            raise TypeError(f"CrossEntropy: logits must be floating point, got {logits.dtype}")
        if not hasattr(y, "dtype") or not np.issubdtype(y.dtype, np.integer):
            got = getattr(y, "dtype", type(y).__name__)
            raise TypeError(f"CrossEntropy: labels must be an integer array of class indices, got {got}")
        if self.weight is not None and self.weight.size != logits.shape[1]:
            raise ValueError(f"{type(self).__name__}: weight has {self.weight.size} values for {logits.shape[1]} "
                             f"classes (logits {tuple(logits.shape)})")
        if y.shape != (logits.shape[0],):
            raise ValueError(
                f"CrossEntropy: labels must have shape ({logits.shape[0]},) to match logits "
                f"{tuple(logits.shape)}, got {tuple(y.shape)}"
            )
        if backend.device_of(y) != backend.device_of(logits):
            raise ValueError(
                f"CrossEntropy: labels are on the {backend.device_of(y)}, logits on the {backend.device_of(logits)}"
            )
        if self.check_labels and y.size:
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= logits.shape[1]:
                raise ValueError(
                    f"CrossEntropy: labels must lie in [0, {logits.shape[1]}) for {logits.shape[1]} classes, "
                    f"got values from {lo} to {hi}"
                )

    def forward(self, logits, y):
        self._validate(logits, y)
        return self._compute(logits, y, guard=not self.check_labels)

    def forward_trusted(self, logits, y):
        """The loss of logits and labels the caller has checked (labels in range)."""
        if type(self).forward is not CrossEntropy.forward:  # a subclass computes its own loss
            return self.forward(logits, y)
        return self._compute(logits, y, guard=False)

    def _weights(self, like):
        """The class weights as an array of ``like``'s dtype on its device (cached), or None."""
        if self.weight is None:
            return None
        w = self._device_weight
        if w is None or w.dtype != like.dtype or backend.device_of(w) != backend.device_of(like):
            w = self._device_weight = backend.to_device(self.weight, backend.device_of(like), dtype=like.dtype)
        return w

    def _guard(self, xp, y, classes):
        """(labels, mask of out-of-range labels or None): out-of-range labels read class 0, then NaN."""
        bad = (y < 0) | (y >= classes)
        return xp.where(bad, 0, y), bad

    def _compute(self, logits, y, guard: bool):
        if self.weight is None and logits.dtype in _xent.DTYPES:  # out-of-range labels: NaN there
            value, self._grad = _xent.forward(logits, y, self.label_smoothing,
                                              logits.shape[0] if self.reduction == "mean" else 1)
            return value
        self._grad = None
        xp = backend.get_array_module(logits)
        n, classes = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        rows = xp.arange(n)
        bad = None
        if guard:  # out-of-range labels: NaN, on the device
            y, bad = self._guard(xp, y, classes)
        log_s = xp.log(s[:, 0])
        nll = log_s - shifted[rows, y]
        w = self._weights(logits)
        eps = self.label_smoothing
        if w is not None:
            nll = w[y] * nll
        if eps:
            # Σ_c w[c] ℓ_{n,c} = (Σ_c w[c]) log s − Σ_c w[c] shifted_c (ℓ_{n,c} = log s − shifted_c)
            smooth = (log_s * classes - shifted.sum(axis=1)) if w is None else (log_s * w.sum() - shifted @ w)
            nll = (1 - eps) * nll + (eps / classes) * smooth
        if bad is not None:
            nll = xp.where(bad, xp.nan, nll)
        self._probs, self._y, self._bad = e / s, y, bad
        self._norm = (w[y].sum() if w is not None else n) if self.reduction == "mean" else 1
        return nll.sum() / self._norm

    def backward(self):
        if self._grad is not None:
            return self._grad
        p = self._saved("_probs")
        n, classes = p.shape
        xp = backend.get_array_module(p)
        rows = xp.arange(n)
        w, eps = self._weights(p), self.label_smoothing
        if w is None and not eps:
            g = p.copy()
            g[rows, self._y] -= 1
        else:
            wy = w[self._y] if w is not None else None
            g = p * (wy[:, None] if wy is not None else 1) * (1 - eps)
            g[rows, self._y] -= (1 - eps) * (wy if wy is not None else 1)
            if eps:
                total_w = w.sum() if w is not None else classes
                g += (eps / classes) * (total_w * p - (w[None, :] if w is not None else 1))
        if not (isinstance(self._norm, int) and self._norm == 1):
            g /= self._norm
        if self._bad is not None:
            g = xp.where(self._bad[:, None], xp.nan, g).astype(g.dtype, copy=False)
        return g.astype(p.dtype, copy=False)


class NLLLoss(CrossEntropy):
    """Negative log-likelihood of log-probabilities (a model ending in ``log_softmax``), as
    PyTorch's ``F.nll_loss``: L = −Σ_n w[y_n] z_n[y_n] / W (W = Σ_n w[y_n], N without ``weight``);
    ∂L/∂z_n = −w[y_n] onehot(y_n)/W. Labels are checked as ``CrossEntropy`` checks them; there is
    no label smoothing (PyTorch's nll_loss has none)."""

    def __init__(self, reduction: str = "mean", check_labels: bool = True, weight=None):
        super().__init__(reduction, check_labels, weight)

    def _compute(self, logp, y, guard: bool):
        xp = backend.get_array_module(logp)
        n = logp.shape[0]
        bad = None
        if guard:
            y, bad = self._guard(xp, y, logp.shape[1])
        nll = -logp[xp.arange(n), y]
        w = self._weights(logp)
        if w is not None:
            nll = w[y] * nll
        if bad is not None:
            nll = xp.where(bad, xp.nan, nll)
        self._probs, self._y, self._bad = xp.zeros_like(logp), y, bad  # backward: −w[y]·onehot(y)
        self._norm = (w[y].sum() if w is not None else n) if self.reduction == "mean" else 1
        return nll.sum() / self._norm


class MSE(Loss):
    """L = (1/M) Σ (output − target)² over all M elements;  ∂L/∂output = 2(output − target)/M."""

    _diff = None  # output − target, kept for backward

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"MSE: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def forward(self, output, target):
        if tuple(output.shape) != tuple(target.shape):
            raise ValueError(f"MSE: output shape {tuple(output.shape)} and target shape {tuple(target.shape)} differ")
        if not np.issubdtype(target.dtype, np.floating):
            raise TypeError(f"MSE: target must be floating point, got {target.dtype}")
        self._diff = output - target.astype(output.dtype, copy=False)
        total = (self._diff * self._diff).sum()
        return total / self._diff.size if self.reduction == "mean" else total

    def backward(self):
        d = self._saved("_diff")
        g = 2 * d
        return g / d.size if self.reduction == "mean" else g


def _reduction(reduction, who):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{who}: reduction must be 'mean' or 'sum', got {reduction!r}")
    return reduction


def _same_shape_float(who, output, target):
    if tuple(output.shape) != tuple(target.shape):
        raise ValueError(f"{who}: output shape {tuple(output.shape)} and target shape {tuple(target.shape)} differ")
    if not np.issubdtype(target.dtype, np.floating):
        raise TypeError(f"{who}: target must be floating point, got {target.dtype}")
    return target.astype(output.dtype, copy=False)


class BCEWithLogits(Loss):
    """Binary cross-entropy from logits x and targets y in [0, 1], as PyTorch's
    BCEWithLogitsLoss: ℓ = p·y·softplus(−x) + (1 − y)·softplus(x) (= −[p·y log σ(x) + (1 − y)
    log(1 − σ(x))]), softplus(x) = max(x, 0) + log(1 + e^−|x|), stable for any x; the mean over
    all elements (or the sum). ``pos_weight`` p: one per class (last axis) or a number, default 1.
    ∂ℓ/∂x = σ(x)(p·y + 1 − y) − p·y."""

    _saved_x = None

    def __init__(self, reduction: str = "mean", pos_weight=None):
        self.reduction = _reduction(reduction, "BCEWithLogits")
        if pos_weight is not None:
            pw = np.asarray(backend.to_numpy(pos_weight), dtype=np.float64)
            if pw.ndim > 1 or not np.isfinite(pw).all() or (pw < 0).any():
                raise ValueError(f"BCEWithLogits: pos_weight must be a number or a 1-D array of finite values >= 0, "
                                 f"got {pw}")
            pos_weight = pw
        self.pos_weight = pos_weight

    def forward(self, x, y):
        y = _same_shape_float("BCEWithLogits", x, y)
        if self.pos_weight is not None and self.pos_weight.ndim == 1 and (x.ndim == 0 or
                                                                          self.pos_weight.size != x.shape[-1]):
            raise ValueError(f"BCEWithLogits: pos_weight has {self.pos_weight.size} values, the output's last axis "
                             f"{x.shape[-1] if x.ndim else 0}")
        xp = backend.get_array_module(x)
        sp_pos = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))  # softplus(x)
        sp_neg = sp_pos - x  # softplus(−x)
        p = 1 if self.pos_weight is None else backend.to_device(self.pos_weight, backend.device_of(x), dtype=x.dtype)
        loss = p * y * sp_neg + (1 - y) * sp_pos
        self._saved_x, self._y, self._p = x, y, p
        total = loss.sum()
        return total / loss.size if self.reduction == "mean" else total

    def backward(self):
        x = self._saved("_saved_x")
        xp = backend.get_array_module(x)
        e = xp.exp(-xp.abs(x))
        sig = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))  # σ(x), no overflow for any x
        py = self._p * self._y
        g = sig * (py + 1 - self._y) - py
        g = g / x.size if self.reduction == "mean" else g
        return g.astype(x.dtype, copy=False)


class Huber(Loss):
    """Huber loss, as PyTorch's HuberLoss: with d = output − target, ℓ = d²/2 where |d| < δ and
    δ(|d| − δ/2) elsewhere; the mean over all elements (or the sum). ∂ℓ/∂output = d where
    |d| < δ, δ·sign(d) elsewhere. ``SmoothL1(β)`` is this divided by β (δ = β)."""

    _diff = None

    def __init__(self, delta: float = 1.0, reduction: str = "mean"):
        who = type(self).__name__
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta > 0:
            raise ValueError(f"{who}: {'beta' if who == 'SmoothL1' else 'delta'} must be a positive number, "
                             f"got {delta!r}")
        self.delta, self.reduction = float(delta), _reduction(reduction, who)

    def _scale(self):
        return 1.0

    def forward(self, output, target):
        target = _same_shape_float(type(self).__name__, output, target)
        xp = backend.get_array_module(output)
        d = output - target
        a = xp.abs(d)
        loss = xp.where(a < self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta)) / self._scale()
        self._diff = d
        total = loss.sum()
        return total / loss.size if self.reduction == "mean" else total

    def backward(self):
        d = self._saved("_diff")
        xp = backend.get_array_module(d)
        g = xp.clip(d, -self.delta, self.delta) / self._scale()
        g = g / d.size if self.reduction == "mean" else g
        return g.astype(d.dtype, copy=False)


class SmoothL1(Huber):
    """Smooth L1, as PyTorch's SmoothL1Loss: ℓ = d²/(2β) where |d| < β and |d| − β/2 elsewhere
    (Huber with δ = β, divided by β); ∂ℓ/∂output = d/β or sign(d)."""

    def __init__(self, beta: float = 1.0, reduction: str = "mean"):
        super().__init__(beta, reduction)

    @property
    def beta(self):
        return self.delta

    def _scale(self):
        return self.delta


_NAMES = {"cross_entropy": CrossEntropy, "crossentropy": CrossEntropy, "sparse_categorical_crossentropy": CrossEntropy,
          "nll_loss": NLLLoss, "nll": NLLLoss, "mse": MSE, "mean_squared_error": MSE,
          "bce_with_logits": BCEWithLogits, "huber": Huber, "smooth_l1": SmoothL1}


def get(spec) -> Loss:
    """A loss from a name ("cross_entropy", Keras's "sparse_categorical_crossentropy", "nll_loss",
    "mse", "mean_squared_error", "bce_with_logits", "huber", "smooth_l1") or a loss instance
    (returned as it is). gpunet's cross-entropies take logits: Keras's ``from_logits=True``, with
    class indices for the categorical one."""
    if isinstance(spec, str):
        key = spec.lower()
        if key in _NAMES:
            return _NAMES[key]()
        if key == "binary_crossentropy":
            raise ValueError(f"loss {spec!r}: gpunet's binary cross-entropy takes logits: pass 'bce_with_logits' "
                             "(Keras's binary_crossentropy with from_logits=True) and leave the sigmoid out of the model")
        if key == "categorical_crossentropy":
            raise ValueError(f"loss {spec!r}: gpunet's cross-entropy takes integer class labels, not one-hot "
                             "targets; pass 'sparse_categorical_crossentropy' (or 'cross_entropy') with y as class "
                             "indices (y.argmax(axis=1) for one-hot rows)")
        raise ValueError(f"unknown loss {spec!r}; expected a gpunet loss instance or one of {sorted(_NAMES)}")
    if isinstance(spec, type):
        raise TypeError(f"expected a loss instance, got the class {spec.__name__} (pass {spec.__name__}())")
    if not (callable(spec) and callable(getattr(spec, "backward", None))):
        raise TypeError(f"expected a loss instance with a backward(), such as gpunet.losses.CrossEntropy(), or a "
                        f"loss name, got a {type(spec).__name__}")
    return spec
