"""Run every tier of a kernel against its float64 reference on random draws.

A kernel tier is a function that writes its results into arrays it is given (kernel style).
``make_case(rng)`` draws one ``Case``: float64 NumPy ``inputs`` (read only), ``inplace``
arrays (read and updated, such as parameters and optimizer state), ``outputs`` to allocate
(name -> (shape, dtype)) and plain ``scalars``. For each draw and tier the harness casts floating
arrays to the tier's dtype, moves them to the GPU for GPU tiers, poisons every output (NaN, or
a sentinel for integer outputs) so that an element the kernel forgets to write shows up, calls
``fn(**inputs, **inplace, **outputs, **scalars)`` and compares each output and in-place array
with the reference by ‖out − ref‖ / ‖ref‖ (‖out − ref‖ when ‖ref‖ = 0). A NaN where the
reference has none counts as an infinite error, and so does a NaN missing where it has one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GPU_TIERS = ("numba_cuda", "cupy")


@dataclass
class Case:
    inputs: dict = field(default_factory=dict)
    inplace: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # name -> (shape, dtype); dtype None = the tier's float dtype
    scalars: dict = field(default_factory=dict)
    label: str = ""


@dataclass
class TierReport:
    """Worst relative error per tier and output over all draws, with the draw that gave it."""

    worst: dict = field(default_factory=dict)  # tier -> {output name: error}
    where: dict = field(default_factory=dict)  # tier -> {output name: case label}

    def max_error(self, tier: str) -> float:
        return max(self.worst.get(tier, {}).values(), default=0.0)

    def assert_below(self, tol, tiers=None) -> None:
        """Fail unless every error is at most ``tol``: a number, or a dict of per-output bounds
        with an optional "default" (sums whose terms cancel need a looser float32 bound)."""
        bounds = tol if isinstance(tol, dict) else {"default": tol}
        bad = []
        for tier in tiers or self.worst:
            for name, err in self.worst[tier].items():
                if not err <= bounds.get(name, bounds.get("default", 0.0)):
                    bad.append(f"{tier}.{name}: {err:.3g} (draw {self.where[tier][name]})")
        if bad:
            raise AssertionError(f"relative error above {tol}: " + "; ".join(bad))

    def __str__(self):
        return "\n".join(f"{t:<11} " + ", ".join(f"{k}={v:.2e}" for k, v in d.items()) for t, d in self.worst.items())


def relative_error(out, ref) -> float:
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        return float("inf")
    nan_ref, nan_out = np.isnan(ref), np.isnan(out)
    if (nan_ref != nan_out).any():
        return float("inf")
    inf_ref = np.isinf(ref)
    if (inf_ref != np.isinf(out)).any() or (ref[inf_ref] != out[inf_ref]).any():
        return float("inf")
    ok = ~(nan_ref | inf_ref)
    diff = np.linalg.norm(out[ok] - ref[ok])
    den = np.linalg.norm(ref[ok])
    return float(diff / den) if den > 0 else float(diff)


def _poison(shape, dtype, xp):
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return xp.full(shape, np.nan, dtype=dtype)
    if dtype == np.bool_:
        return xp.ones(shape, dtype=dtype)
    return xp.full(shape, np.iinfo(dtype).max // 3, dtype=dtype)


def _convert(a, dtype, xp):
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(dtype)
    return xp.asarray(a) if xp is not np else a.copy()


def _run(fn, case: Case, dtype, xp) -> dict:
    inputs = {k: _convert(v, dtype, xp) for k, v in case.inputs.items()}
    inplace = {k: _convert(v, dtype, xp) for k, v in case.inplace.items()}
    outputs = {k: _poison(shape, dtype if dt is None else dt, xp) for k, (shape, dt) in case.outputs.items()}
    fn(**inputs, **inplace, **outputs, **case.scalars)
    result = {**outputs, **inplace}
    return {k: (v.get() if xp is not np else v) for k, v in result.items()}


def compare_tiers(fns: dict, make_case, draws: int = 20, seed: int = 0, dtype=np.float32,
                  tiers=None) -> TierReport:
    """Run ``fns[tier]`` for each tier (default: every tier in ``fns`` except "reference") on
    ``draws`` cases from ``make_case(rng)`` and compare with ``fns["reference"]`` in float64."""
    tiers = [t for t in (tiers or fns) if t != "reference"]
    xp_gpu = None
    if any(t in GPU_TIERS for t in tiers):
        import os

        if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and all(t == "numba_cuda" for t in tiers):
            xp_gpu = np  # the simulator runs numba_cuda kernels on NumPy arrays
        else:
            import cupy as xp_gpu  # noqa: F811
    rng = np.random.default_rng(seed)
    report = TierReport({t: {} for t in tiers}, {t: {} for t in tiers})
    for i in range(draws):
        case = make_case(rng)
        label = case.label or f"#{i}"
        ref = _run(fns["reference"], case, np.float64, np)
        for tier in tiers:
            xp = xp_gpu if tier in GPU_TIERS else np
            out = _run(fns[tier], case, dtype, xp)
            for name, r in ref.items():
                err = relative_error(out[name], r)
                if err > report.worst[tier].get(name, -1.0):
                    report.worst[tier][name] = err
                    report.where[tier][name] = label
    return report
