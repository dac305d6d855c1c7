"""Weight initializers, by name or callable.

Every initializer is ``f(shape, fan_in, fan_out, rng) -> np.ndarray`` (float64, drawn on the
host from ``gpunet.backend.rng()`` so that one seed gives the same weights on CPU and GPU).
Fans: a dense weight (out, in) has fan_in = in, fan_out = out; a convolution weight
(out, in, kh, kw) has fan_in = in·kh·kw, fan_out = out·kh·kw.

| name | distribution (n = fan_in, or fan_out with ``mode="fan_out"``; g = ``gain``, default 1) |
| --- | --- |
| uniform | U(−a, a), a = 1/√fan_in |
| gaussian | N(0, 1/fan_in)  (variance 1/n; ``std=`` overrides, e.g. std=1 for the naive N(0, 1)) |
| lecun_normal | std g/√n, **truncated** at ±2σ and rescaled to that std (Keras's and JAX's; ``truncated=False``: N(0, g²/n), Chainer's LeCunNormal) |
| lecun_uniform | U(−a, a), a = g√(3/n) |
| glorot_normal / xavier_normal | N(0, 2g²/(fan_in + fan_out)), untruncated (PyTorch's; ``truncated=True``: Keras's) |
| glorot_uniform / xavier_uniform | U(−a, a), a = g√(6/(fan_in + fan_out)) |
| he_normal / kaiming_normal | N(0, 2g²/n), untruncated (PyTorch's kaiming_normal_; ``truncated=True``: Keras's) |
| he_uniform / kaiming_uniform | U(−a, a), a = g√(6/n) |
| trunc_normal | N(mean, std²) restricted to [a, b] (absolute bounds, not rescaled: PyTorch's trunc_normal_) |
| orthogonal | Q of the QR decomposition of a Gaussian matrix (rows = shape[0]), times ``gain`` |
| zeros | 0 |
| constant | ``value`` (default 0) |

"Truncated and rescaled" draws from N(0, 1) restricted to [−2, 2] (redrawing the values outside)
and multiplies by std/0.8796…, that restricted normal's standard deviation, so the weights have
the std the formula asks for. Options go with the name: ``init="he_normal"`` or
``gn.init.get("he_normal", mode="fan_out", gain=0.5)`` (a callable any layer's ``init=`` takes).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from . import backend


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape: dense (out, in) or convolution (out, in, *kernel)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(fan_in, fan_out, mode, who):
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"{who}: mode must be 'fan_in' or 'fan_out', got {mode!r}")


def _gain(gain, who):
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not np.isfinite(gain) or gain <= 0:
        raise ValueError(f"{who}: gain must be a positive number, got {gain!r}")
    return float(gain)


def uniform(shape, fan_in, fan_out, rng, scale=None):
    a = 1.0 / np.sqrt(fan_in) if scale is None else float(scale)
    return rng.uniform(-a, a, size=shape)


def gaussian(shape, fan_in, fan_out, rng, std=None):
    std = 1.0 / np.sqrt(fan_in) if std is None else float(std)
    return rng.normal(0.0, std, size=shape)


# std of a standard normal truncated to [-2, 2]
_TRUNC2_STD = 0.87962566103423978


def _normal(shape, std, rng, truncated):
    """N(0, std²), or the normal truncated at ±2σ and rescaled to std (see the module docstring)."""
    if not truncated:
        return rng.normal(0.0, std, size=shape)
    z = rng.standard_normal(size=shape)
    bad = np.abs(z) > 2
    while bad.any():
        z[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(z) > 2
    return z * (std / _TRUNC2_STD)


def lecun_normal(shape, fan_in, fan_out, rng, mode="fan_in", gain=1.0, truncated=True):
    n = _fan(fan_in, fan_out, mode, "lecun_normal")
    return _normal(shape, _gain(gain, "lecun_normal") / np.sqrt(n), rng, truncated)


def lecun_uniform(shape, fan_in, fan_out, rng, mode="fan_in", gain=1.0):
    a = _gain(gain, "lecun_uniform") * np.sqrt(3.0 / _fan(fan_in, fan_out, mode, "lecun_uniform"))
    return rng.uniform(-a, a, size=shape)


def glorot_normal(shape, fan_in, fan_out, rng, gain=1.0, truncated=False):
    return _normal(shape, _gain(gain, "glorot_normal") * np.sqrt(2.0 / (fan_in + fan_out)), rng, truncated)


def glorot_uniform(shape, fan_in, fan_out, rng, gain=1.0):
    a = _gain(gain, "glorot_uniform") * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape)


def he_normal(shape, fan_in, fan_out, rng, mode="fan_in", gain=1.0, truncated=False):
    n = _fan(fan_in, fan_out, mode, "he_normal")
    return _normal(shape, _gain(gain, "he_normal") * np.sqrt(2.0 / n), rng, truncated)


def he_uniform(shape, fan_in, fan_out, rng, mode="fan_in", gain=1.0):
    a = _gain(gain, "he_uniform") * np.sqrt(6.0 / _fan(fan_in, fan_out, mode, "he_uniform"))
    return rng.uniform(-a, a, size=shape)


def trunc_normal(shape, fan_in, fan_out, rng, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """N(mean, std²) restricted to [a, b] by redrawing the values outside; the bounds must keep at
    least 0.1% of the distribution (else the redrawing could take forever: say so instead)."""
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    if not (np.isfinite([mean, std, a, b]).all() and std > 0 and a < b):
        raise ValueError(f"trunc_normal: need finite mean, std > 0 and a < b, got mean={mean}, std={std}, a={a}, b={b}")
    kept = 0.5 * (math.erf((b - mean) / (std * math.sqrt(2))) - math.erf((a - mean) / (std * math.sqrt(2))))
    if kept < 1e-3:
        raise ValueError(f"trunc_normal: [a, b] = [{a}, {b}] keeps {kept:.2g} of N({mean}, {std}²); widen the bounds")
    z = rng.normal(mean, std, size=shape)
    bad = (z < a) | (z > b)
    while bad.any():
        z[bad] = rng.normal(mean, std, size=int(bad.sum()))
        bad = (z < a) | (z > b)
    return z


def orthogonal(shape, fan_in, fan_out, rng, gain=1.0):
    if len(shape) < 2 or 0 in tuple(shape):
        raise ValueError(f"orthogonal: needs a weight of at least two non-empty dimensions (rows, columns...), "
                         f"got shape {tuple(shape)}")
    rows = int(shape[0]) if len(shape) else 1
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    a = rng.standard_normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique (uniform over orthogonal matrices)
    if rows < cols:
        q = q.T
    return float(gain) * q[:rows, :cols].reshape(shape)


def zeros(shape, fan_in, fan_out, rng):
    return np.zeros(shape)


def constant(shape, fan_in, fan_out, rng, value=0.0):
    return np.full(shape, float(value))


INITIALIZERS = {
    "uniform": uniform,
    "gaussian": gaussian,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "trunc_normal": trunc_normal,
    "orthogonal": orthogonal,
    "zeros": zeros,
    "constant": constant,
}


def get(spec, **kwargs):
    """Resolve a name (with optional keyword arguments, e.g. get("constant", value=0.1)) or a
    callable to an initializer function."""
    if callable(spec):
        return functools.partial(spec, **kwargs) if kwargs else spec
    if not isinstance(spec, str) or spec not in INITIALIZERS:
        raise ValueError(
            f"unknown initializer {spec!r}; expected a callable or one of: {', '.join(sorted(INITIALIZERS))}"
        )
    fn = INITIALIZERS[spec]
    return functools.partial(fn, **kwargs) if kwargs else fn


def initialize(spec, shape, dtype="float32", rng=None, fan=None) -> np.ndarray:
    """Draw a weight of ``shape`` with initializer ``spec``; returns a host array of ``dtype``.
    ``fan``: (fan_in, fan_out) when they are not those of ``shape`` (a bias takes its layer's)."""
    fn = get(spec)
    fan_in, fan_out = fans(shape) if fan is None else fan
    out = np.asarray(fn(tuple(shape), fan_in, fan_out, backend.rng() if rng is None else rng))
    if out.shape != tuple(shape):
        raise ValueError(f"initializer {spec!r} returned shape {out.shape}, expected {tuple(shape)}")
    if not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.complexfloating):
        raise TypeError(f"initializer {spec!r} returned dtype {out.dtype}, expected real numbers")
    with np.errstate(over="ignore"):  # an overflow is reported below, as a non-finite value
        out = out.astype(dtype)
    if not np.isfinite(out).all():  # after the cast: a value too large for ``dtype`` is inf there
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        raise ValueError(f"initializer {spec!r} returned {bad} non-finite values (NaN or inf in {dtype}) "
                         f"for a weight of shape {tuple(shape)}")
    return out


def initialize_bias(spec, size: int, fan_in: int, dtype="float32", who: str = "layer") -> np.ndarray:
    """A bias of ``size`` values: ``spec`` a number (every value), an initializer name or callable,
    drawn with the layer's fan_in ("uniform" gives PyTorch's default U(−1/√fan_in, 1/√fan_in))."""
    if isinstance(spec, (int, float, np.integer, np.floating)) and not isinstance(spec, bool):
        if not np.isfinite(spec):
            raise ValueError(f"{who}: bias_init must be finite, got {spec!r}")
        return np.full(int(size), spec, dtype=dtype)
    try:
        return initialize(spec, (int(size),), dtype=dtype, fan=(int(fan_in), int(size)))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{who}(bias_init): {exc}") from None
