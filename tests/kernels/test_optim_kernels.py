"""Every fused optimizer rule, every tier, against the float64 reference (kernels/optim_update).

Each draw picks a size (many not divisible by 4, one of 2^20 + 3 per rule on the CPU), random
state, a gradient scale from 1e-6 to 1e6, a clip threshold just below, at or above ‖g‖, value
clipping, a random decay range [0, n_decay) with L2, L1 and decoupled decay, and sometimes a
non-finite gradient (skipped under the guard, propagated without it).

Tolerance: ‖out − ref‖/‖ref‖ ≤ 5e-6 for every float32 tier. The inputs are the reference's
float64 values rounded to float32 (relative error 6e-8) and the arithmetic is float32 with
constants computed in float64 and rounded once: about ten roundings per element give 1e-7 to
3e-7 typically. A velocity update v ← μv − ηg whose two terms nearly cancel, in a draw of one
element, amplifies that: 1.9e-6 was the worst of 960 draws per rule. A wrong formula, a missed
element, a wrong decay range or bias correction gives 1e-4 and more (checked by mutating the
kernels). Float64 runs of the CUDA C source (on the CPU emulator) must agree to 1e-12.
"""
import math

import numpy as np
import pytest

from gpunet import backend
from gpunet.ops.registry import OPS
from gpunet.ops.optim_update import RULES
from gpunet.testing import Case, compare_tiers

BIG = (1 << 20) + 3
TOL = 5e-6


def _with_stats(fn):
    def run(stats, **kw):  # stats travels as a float64 scalar-argument array; move it to the device
        xp = backend.get_array_module(kw["w"])
        fn(stats=xp.asarray(stats, dtype=np.float64), **kw)
    return run


def _tier_fns(rule, tiers):
    return {t: _with_stats(getattr(OPS["optim_update"].module(t), rule)) for t in ("reference", *tiers)}


def _emulated_fns(rule):
    """The reference and the CUDA C tier, run on the CPU emulator of tests/kernels."""
    from cuda_host_emulator import require_compiler
    from optim_emulator import emulated_fn

    require_compiler()
    from gpunet.kernels.optim_update import cupy_tier

    fns = _tier_fns(rule, [])
    fns["cuda_c_emulated"] = _with_stats(emulated_fn(cupy_tier, getattr(cupy_tier, rule)))
    return fns


def _rule_hyper(rule, rng):
    if rule == "momentum":
        return {"mu": float(rng.uniform(0.0, 0.99)), "nesterov": bool(rng.random() < 0.5)}
    if rule == "adagrad":
        return {"lr_decay": float(rng.choice([0.0, 1e-3, 0.1])), "eps": float(rng.choice([1e-10, 1e-6, 1e-2]))}
    if rule == "rmsprop":
        return {"alpha": float(rng.uniform(0.8, 0.999)), "eps": float(rng.choice([1e-8, 1e-4])),
                "mu": float(rng.choice([0.0, 0.9])), "centered": bool(rng.random() < 0.5)}
    if rule == "adam":
        return {"beta1": float(rng.choice([0.0, 0.5, 0.9, 0.99])), "beta2": float(rng.choice([0.9, 0.999, 0.9999])),
                "eps": float(rng.choice([1e-8, 1e-6, 1e-3]))}
    return {}


def _states(rule, rng, n, gscale):
    if rule == "momentum":
        return {"buf": rng.standard_normal(n) * 1e-2}
    if rule == "adagrad":
        return {"acc": rng.uniform(0.1, 2.0, n) * gscale**2}
    if rule == "rmsprop":
        ga = rng.standard_normal(n) * gscale
        return {"sq": ga * ga + rng.uniform(0.5, 1.5, n) * gscale**2, "ga": ga, "buf": rng.standard_normal(n) * 1e-2}
    if rule == "adam":
        return {"m": rng.standard_normal(n) * gscale, "v": rng.uniform(0.1, 2.0, n) * gscale**2}
    return {}


def make_case_for(rule, sizes, big=None):
    draw = {"i": 0}

    def make_case(rng):
        i = draw["i"]
        draw["i"] += 1
        n = big if (big and i == 0) else int(rng.choice(sizes))
        gscale = float(10.0 ** rng.uniform(-6, 6))
        w = rng.standard_normal(n)
        w[rng.random(n) < 0.02] = 0.0  # sign(0) = 0 for L1
        g = rng.standard_normal(n) * gscale
        norm = float(np.sqrt(np.sum(g * g)))
        kind = ["plain", "skip", "ignore"][i] if i < 3 else rng.choice(["plain", "skip", "ignore"], p=[0.8, 0.1, 0.1])
        stats = np.array([norm**2, 0.0, float(rng.choice([1, 2, 3, 7, 30, 1000])), float(rng.integers(0, 3))])
        guard = kind != "ignore"
        if kind != "plain":
            g[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
            stats[0], stats[1] = float(np.sum(g * g)), 1.0
        clip_norm = float(rng.choice([0.0, 0.5, 0.999, 1.0, 1.001, 2.0])) * norm
        clip_value = float(rng.choice([0.0, 0.0, 0.5])) * gscale
        scalars = {"stats": stats, "n_decay": int(rng.integers(0, n + 1)), "lr": float(10 ** rng.uniform(-4, -1)),
                   "weight_decay": float(rng.choice([0.0, 1e-2])), "l1": float(rng.choice([0.0, 1e-3])),
                   "decoupled_wd": float(rng.choice([0.0, 1e-1])), "clip_norm": clip_norm,
                   "clip_value": clip_value, "norm_eps": 0.0, "guard": guard, **_rule_hyper(rule, rng)}
        if rule in ("sgd", "momentum") and rng.random() < 0.4:
            scalars["norm_eps"] = float(rng.choice([1e-8, 1e-3]))
        return Case(inputs={"g": g}, inplace={"w": w, **_states(rule, rng, n, gscale)}, scalars=scalars,
                    label=f"{rule} n={n} {kind} gscale={gscale:.1e} clip={clip_norm / max(norm, 1e-300):.3f}")

    return make_case


SIZES = [1, 2, 3, 5, 7, 16, 17, 63, 255, 1001, 4097, 65539]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_numba_cpu_matches_reference(rule):
    report = compare_tiers(_tier_fns(rule, ["numba_cpu"]), make_case_for(rule, SIZES, big=BIG), draws=24,
                           seed=sorted(RULES).index(rule))
    report.assert_below(TOL)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_reference_tier_is_not_trivially_matched(rule):
    """The comparison can fail: a tier that forgets the decay range is caught."""
    def no_decay(stats, **kw):
        kw["n_decay"] = 0
        OPS["optim_update"].module("numba_cpu").__dict__[rule](stats=stats, **kw)

    fns = {"reference": _tier_fns(rule, [])["reference"], "numba_cpu": no_decay}

    def case(rng):
        c = make_case_for(rule, [1001])(rng)
        c.scalars.update(n_decay=1001, weight_decay=0.5, guard=False, stats=np.array([1.0, 0, 1, 0]),
                         clip_norm=0.0, clip_value=0.0, norm_eps=0.0)
        return c

    report = compare_tiers(fns, case, draws=2, seed=1)
    assert report.max_error("numba_cpu") > 1e-4


@pytest.mark.parametrize("rule", sorted(RULES))
def test_cuda_c_tier_on_the_cpu_emulator(rule):
    """optim_update.cu and its launch code on the CPU: float4 and double2 paths, scalar tails,
    grid-stride loops (20011 elements need more blocks than the emulated device gets)."""
    for dtype, seed in ((np.float32, 21), (np.float64, 22)):
        report = compare_tiers(_emulated_fns(rule), make_case_for(rule, [1, 3, 6, 257, 1001, 20011]), draws=8,
                               seed=seed, dtype=dtype)
        report.assert_below(TOL if dtype == np.float32 else 1e-12)


def test_cuda_c_tier_unaligned_views_on_the_cpu_emulator():
    """A view starting one element in is not 16-byte aligned: the kernel takes its scalar path."""
    from cuda_host_emulator import require_compiler
    from optim_emulator import emulated

    require_compiler()
    from gpunet.kernels.optim_update import cupy_tier

    rng = np.random.default_rng(3)
    n = 1003
    base = {k: rng.standard_normal(n + 1) for k in ("w", "g", "m")}
    base["v"] = rng.uniform(0.1, 1.0, n + 1)
    stats = np.array([float(np.sum(base["g"][1:] ** 2)), 0, 3, 0])
    kw = dict(n_decay=500, lr=1e-2, weight_decay=1e-2, l1=0.0, decoupled_wd=0.0, clip_norm=0.0, clip_value=0.0,
              norm_eps=0.0, guard=True, beta1=0.9, beta2=0.999, eps=1e-8)
    ref = {k: v[1:].copy() for k, v in base.items()}
    OPS["optim_update"].module("reference").adam(ref["w"], ref["g"], ref["m"], ref["v"], stats, **kw)
    dev = {k: v.astype(np.float32) for k, v in base.items()}
    assert dev["w"][1:].ctypes.data % 16 != 0
    with emulated(cupy_tier):
        cupy_tier.adam(dev["w"][1:], dev["g"][1:], dev["m"][1:], dev["v"][1:], stats, **kw)
    for k in ("w", "m", "v"):
        assert np.linalg.norm(dev[k][1:] - ref[k]) / np.linalg.norm(ref[k]) < TOL
        assert dev[k][0] == np.float32(base[k][0])  # the element before the view is untouched


@pytest.mark.cudasim
@pytest.mark.parametrize("rule", sorted(RULES))
def test_numba_cuda_matches_reference_under_simulator(rule):
    report = compare_tiers(_tier_fns(rule, ["numba_cuda"]), make_case_for(rule, [1, 5, 67, 130, 257]), draws=4,
                           seed=7)
    report.assert_below(TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["cupy", "numba_cuda"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_gpu_tiers_match_reference(rule, tier):
    report = compare_tiers(_tier_fns(rule, [tier]), make_case_for(rule, SIZES, big=BIG), draws=20, seed=11)
    report.assert_below(TOL)


@pytest.mark.gpu
def test_cupy_tier_unaligned_views_take_the_scalar_path():
    """A view starting 1 element in is not 16-byte aligned: the kernel must not use float4 there."""
    import cupy

    rng = np.random.default_rng(3)
    n = 1003
    base = {k: rng.standard_normal(n + 1) for k in ("w", "g", "m")}
    base["v"] = rng.uniform(0.1, 1.0, n + 1)
    stats = np.array([float(np.sum(base["g"][1:] ** 2)), 0, 3, 0])
    kw = dict(n_decay=500, lr=1e-2, weight_decay=1e-2, l1=0.0, decoupled_wd=0.0, clip_norm=0.0, clip_value=0.0,
              norm_eps=0.0, guard=True, beta1=0.9, beta2=0.999, eps=1e-8)
    ref = {k: v[1:].copy() for k, v in base.items()}
    OPS["optim_update"].module("reference").adam(ref["w"], ref["g"], ref["m"], ref["v"], stats, **kw)
    dev = {k: cupy.asarray(v.astype(np.float32)) for k, v in base.items()}
    OPS["optim_update"].module("cupy").adam(dev["w"][1:], dev["g"][1:], dev["m"][1:], dev["v"][1:],
                                             cupy.asarray(stats), **kw)
    for k in ("w", "m", "v"):
        out = cupy.asnumpy(dev[k])
        assert np.linalg.norm(out[1:] - ref[k]) / np.linalg.norm(ref[k]) < TOL
        assert out[0] == np.float32(base[k][0])  # the element before the view is untouched
