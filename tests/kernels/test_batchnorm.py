"""Batch-norm kernels (kernels/batchnorm): every tier against the float64 reference, and argument
checks of gpunet.ops.batchnorm.

Inputs are drawn in float64 and rounded to float32 before the reference sees them, so the float32
tiers and the reference work on the same numbers. Tolerances (‖out − ref‖/‖ref‖):
- float32 tiers, 1e-6: the CPU tiers accumulate and normalize in float64 and round once (6e-8);
  the CUDA C tier accumulates in float64, takes x − μ in float64, and does the last multiply-adds
  of the element-wise passes in float32 (a few 1e-7);
- float64 runs, 1e-9: the large-mean draw below turns the 1e-16 rounding of μ into 1e-10 of x − μ.
One draw per run has a mean 10⁶ standard deviations away from zero (1e4 ± 1e-2): a one-pass
E[x²] − E[x]² in float64 loses about 1e-4 of the variance there, far above the tolerance.
"""
import numpy as np
import pytest

from gpunet import backend
from gpunet.ops import batchnorm as B
from gpunet.ops.registry import OPS

tier_module = OPS["batchnorm"].module
from gpunet.testing import Case, compare_tiers

TOL = {np.float32: 1e-6, np.float64: 1e-9}
CPU_SHAPES = [(2, 1, 1), (2, 3, 1), (3, 5, 1), (7, 13, 1), (33, 70, 1), (130, 9, 1), (64, 257, 1), (2, 1, 3),
              (2, 3, 5), (5, 3, 13), (4, 1, 9), (3, 2, 16), (6, 4, 49), (9, 2, 8), (1, 3, 7), (1, 1, 2),
              (17, 5, 33), (2, 64, 3)]
BIG = [(513, 2049, 1), (9, 5, 23311)]  # 2^20 elements and more, (N, C) and (N, C, S)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _draw_x(rng, shape, i):
    if shape[0] * shape[2] <= 3:  # unit spread, so that eps = 0.5 (see _eps) matters
        return f32(rng.standard_normal(shape))
    if i == 2:  # large mean, small spread
        return f32(1e4 + 1e-2 * rng.standard_normal(shape))
    return f32(rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2) + rng.uniform(-5, 5) * rng.random())


def _eps(rng, shape):
    N, _, S = shape
    # with n = 2 values per channel, dx nearly cancels unless eps is comparable to the variance
    return float(rng.choice([1e-5, 1e-3, 0.1])) if N * S > 3 else 0.5


def train_case(shapes, big=()):
    draw = {"i": 0}

    def make(rng):
        i = draw["i"]
        draw["i"] += 1
        shape = big[i] if i < len(big) else shapes[int(rng.integers(len(shapes)))]
        C = shape[1]
        return Case(
            inputs={"x": _draw_x(rng, shape, i), "weight": f32(rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C)),
                    "bias": f32(rng.standard_normal(C))},
            inplace={"running_mean": f32(rng.standard_normal(C)), "running_var": f32(rng.uniform(0.5, 2, C))},
            outputs={"y": (shape, None), "save_mean": ((C,), np.float64), "save_invstd": ((C,), np.float64)},
            scalars={"eps": _eps(rng, shape), "momentum": float(rng.choice([0.1, 0.0, 1.0, rng.random()])),
                     "update_running": bool(rng.random() < 0.8), "relu": bool(rng.random() < 0.4)},
            label=f"shape={shape} draw {i}")
    return make


def eval_case(shapes):
    def make(rng):
        shape = shapes[int(rng.integers(len(shapes)))]
        C = shape[1]
        return Case(inputs={"x": _draw_x(rng, shape, -1), "weight": f32(rng.standard_normal(C)),
                            "bias": f32(rng.standard_normal(C)), "running_mean": f32(rng.standard_normal(C)),
                            "running_var": f32(rng.uniform(0.1, 3, C))},
                    outputs={"y": (shape, None)},
                    scalars={"eps": float(rng.choice([1e-5, 0.1])), "relu": bool(rng.random() < 0.4)}, label=f"{shape}")
    return make


def backward_case(shapes, big=()):
    draw = {"i": 0}

    def make(rng):
        i = draw["i"]
        draw["i"] += 1
        shape = big[i] if i < len(big) else shapes[int(rng.integers(len(shapes)))]
        C = shape[1]
        x = _draw_x(rng, shape, i)
        eps = _eps(rng, shape)
        mean = x.mean(axis=(0, 2))
        invstd = 1.0 / np.sqrt(((x - mean[None, :, None]) ** 2).mean(axis=(0, 2)) + eps)
        # a fused ReLU's output: about half the units off, some exactly 0 (off too)
        relu_y = np.maximum(f32(rng.standard_normal(shape)), 0) * (rng.random(shape) < 0.9)
        return Case(inputs={"dy": f32(rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)), "x": x,
                            "weight": f32(rng.uniform(0.5, 2, C)), "relu_y": relu_y},
                    outputs={"dx": (shape, None), "dweight": ((C,), None), "dbias": ((C,), None)},
                    scalars={"mean": mean, "invstd": invstd, "batch_stats": bool(rng.random() < 0.8),
                             "masked": bool(rng.random() < 0.4)},
                    label=f"shape={shape} draw {i}")
    return make


def _wrap(mod, kind):
    if kind == "train":
        return mod.forward_train
    if kind == "eval":
        return mod.forward_eval

    def run(dy, x, weight, relu_y, dx, dweight, dbias, mean, invstd, batch_stats, masked):
        xp = backend.get_array_module(x)  # the saved statistics are float64 in every tier
        mod.backward(dy, x, weight, xp.asarray(mean), xp.asarray(invstd), dx, dweight, dbias, batch_stats,
                     relu_y if masked else None)
    return run


def _fns(tiers, kind):
    return {t: _wrap(tier_module(t), kind) for t in ("reference", *tiers)}


def _run_all(fns, shapes, big=(), draws=20, seed=0, dtypes=(np.float32, np.float64)):
    for dtype in dtypes:
        compare_tiers(fns("train"), train_case(shapes, big), draws=draws, seed=seed, dtype=dtype) \
            .assert_below(TOL[dtype])
        compare_tiers(fns("eval"), eval_case(shapes), draws=max(4, draws // 3), seed=seed + 1, dtype=dtype) \
            .assert_below(TOL[dtype])
        compare_tiers(fns("backward"), backward_case(shapes, big), draws=draws, seed=seed + 2, dtype=dtype) \
            .assert_below(TOL[dtype])


def test_numba_cpu_matches_reference():
    _run_all(lambda kind: _fns(["numba_cpu"], kind), CPU_SHAPES, big=[BIG[0], BIG[1]], draws=22, seed=10,
             dtypes=(np.float32,))
    _run_all(lambda kind: _fns(["numba_cpu"], kind), CPU_SHAPES, draws=8, seed=20, dtypes=(np.float64,))


# ------------------------------------------------------------------ CUDA C tier on the CPU emulator
EMU_SHAPES = [(2, 1, 1), (2, 3, 1), (7, 5, 1), (100, 3, 1), (40, 37, 1), (40, 36, 1), (5, 128, 1), (33, 132, 1),
              (5, 3, 13), (4, 1, 9), (3, 2, 16), (2, 2, 33), (9, 2, 8), (40, 2, 4), (2, 1, 2), (3, 2, 128),
              (2, 3, 132)]


def _emulated_fns(kind):
    from cuda_host_emulator import emulated

    from gpunet.kernels.batchnorm import cupy_tier

    fns = _fns([], kind)
    inner = _wrap(cupy_tier, kind)
    calls = {"n": 0}

    def run(**kw):
        calls["n"] += 1  # alternate the SM count: different chunkings of the reductions
        with emulated(cupy_tier, sm_count=1 + calls["n"] % 3):
            inner(**kw)
    fns["cuda_c_emulated"] = run
    return fns


def test_cuda_c_tier_on_the_cpu_emulator_matches_reference():
    from cuda_host_emulator import require_compiler

    require_compiler()
    _run_all(_emulated_fns, EMU_SHAPES, draws=9, seed=30)


GEOMETRY = [  # shape, offset of the arrays (1: not 16-byte aligned), kernels that must run
    ((100, 3, 1), 0, ["bn_stats_nc_f32", "bn_normalize_f32_i32", "bn_bwd_sums_nc_f32", "bn_dx_f32_i32"]),
    ((100, 8, 1), 0, ["bn_stats_nc_vec_f32", "bn_normalize_f32_i32", "bn_bwd_sums_nc_vec_f32"]),
    ((9, 256, 1), 0, ["bn_stats_nc_vec_f32", "bn_normalize_nc_vec_f32", "bn_dx_nc_vec_f32"]),
    ((9, 256, 1), 1, ["bn_stats_nc_f32", "bn_normalize_f32_i64", "bn_dx_f32_i64"]),
    ((40, 2, 4), 0, ["bn_stats_ncs_f32", "bn_normalize_f32_i32", "bn_bwd_sums_ncs_f32"]),
    ((13, 2, 8), 1, ["bn_stats_ncs_f32", "bn_normalize_f32_i64"]),
    ((3, 2, 132), 0, ["bn_stats_ncs_f32", "bn_normalize_planes_f32", "bn_dx_planes_f32"]),
    ((9, 2, 7), 0, ["bn_stats_ncs_f32", "bn_normalize_f32_i32"]),
]


@pytest.mark.parametrize("shape,offset,kernels", GEOMETRY)
def test_cuda_c_tier_layout_kernels_chunks_and_fallback_paths(shape, offset, kernels, monkeypatch):
    """Each layout's kernels (vectorized or scalar, 32- or 64-bit indices) against the reference,
    with the reductions split into several chunks."""
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.batchnorm import cupy_tier

    require_compiler()
    monkeypatch.setattr(cupy_tier, "I32_LIMIT", 0 if offset else 2**31)
    rng = np.random.default_rng(40)
    ref = tier_module("reference")
    N, C, S = shape
    n = N * C * S
    x = (rng.standard_normal(n + 1).astype(np.float32) * 3 + 2)[offset:offset + n].reshape(shape)
    w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    for relu in (False, True):  # with relu, y holds the fused ReLU's output and its mask
        outs = {}
        for name, mod in (("ref", ref), ("emu", cupy_tier)):
            rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
            y = np.full(n + 1, np.nan, np.float32)[offset:offset + n].reshape(shape)
            dx = np.full(n + 1, np.nan, np.float32)[offset:offset + n].reshape(shape)
            sm, si = np.empty(C), np.empty(C)
            dw, db = np.empty(C, np.float32), np.empty(C, np.float32)
            with emulated(cupy_tier, sm_count=1) as emu:
                mod.forward_train(x, w, b, rm, rv, y, sm, si, 1e-5, 0.1, True, relu)
                mod.backward(dy, x, w, sm, si, dx, dw, db, True, y if relu else None)
                launches = list(emu.launches)
            outs[name] = (y, sm, si, rm, rv, dx, dw, db)
        assert not relu or (outs["ref"][0] == 0).any()
        for a, r in zip(outs["emu"], outs["ref"]):
            assert np.linalg.norm(a - r) <= 1e-6 * np.linalg.norm(r), (shape, relu)
    names = [nm for nm, _, _ in launches]
    for k in kernels:
        assert k in names, (k, names)
    chunks = [g[1] for nm, g, _ in launches if nm.startswith("bn_stats")]
    if N >= 40:
        assert chunks[0] > 1, launches  # the reduction was split and merged


@pytest.mark.cudasim
def test_numba_cuda_matches_reference_in_the_simulator():
    shapes = [(2, 1, 1), (3, 2, 1), (5, 3, 1), (2, 2, 3), (3, 1, 5)]
    fns = lambda kind: _fns(["numba_cuda"], kind)  # noqa: E731
    compare_tiers(fns("train"), train_case(shapes), draws=4, seed=50).assert_below(1e-6)
    compare_tiers(fns("eval"), eval_case(shapes), draws=2, seed=51).assert_below(1e-6)
    compare_tiers(fns("backward"), backward_case(shapes), draws=4, seed=52).assert_below(1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["cupy", "numba_cuda"])
def test_gpu_tier_matches_reference(tier):
    shapes = CPU_SHAPES + EMU_SHAPES + [(256, 64, 49), (1024, 1000, 1), (8, 3, 12544), (64, 512, 1)]
    big = [(4099, 1024, 1), (33, 17, 3136), (4099, 1025, 1)]
    _run_all(lambda kind: _fns([tier], kind), shapes, big=big, draws=20, seed=60)


# ------------------------------------------------------------------ argument checks
def _args(shape=(4, 3), dtype=np.float32):
    C = shape[1]
    return (np.random.default_rng(0).standard_normal(shape).astype(dtype), np.ones(C, dtype), np.zeros(C, dtype),
            np.zeros(C, dtype), np.ones(C, dtype))


def test_ops_shapes_and_dtypes():
    x, w, b, rm, rv = _args((4, 3, 2, 5))
    y, mean, invstd = B.batch_norm_train(x, w, b, rm, rv)
    assert y.shape == x.shape and y.dtype == np.float32 and mean.dtype == invstd.dtype == np.float64
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-6)
    assert not np.array_equal(rm, np.zeros(3))  # updated in place
    rm0 = rm.copy()
    B.batch_norm_train(x, w, b, rm, rv, update_running=False)
    assert np.array_equal(rm, rm0)
    y2 = B.batch_norm_eval(x, w, b, rm, rv)
    assert y2.shape == x.shape
    dx, dw, db = B.batch_norm_backward(np.ones_like(x), x, w, mean, invstd)
    assert dx.shape == x.shape and dw.shape == db.shape == (3,)
    np.testing.assert_allclose(db, np.full(3, 40.0))


@pytest.mark.parametrize("shape", [(1, 4), (1, 3, 1, 1), (1, 2, 1)])
def test_one_value_per_channel_in_training_is_an_error(shape):
    x, w, b, rm, rv = _args(shape)
    with pytest.raises(ValueError, match="more than one value per channel"):
        B.batch_norm_train(x, w, b, rm, rv)
    B.batch_norm_eval(x, w, b, rm, rv)  # fine with running statistics


def test_bad_arguments_are_clear_errors():
    x, w, b, rm, rv = _args()
    with pytest.raises(ValueError, match=r"weight must be an array of shape \(3,\) and dtype float32"):
        B.batch_norm_train(x, np.ones(4, np.float32), b, rm, rv)
    with pytest.raises(ValueError, match="running_var must be an array of shape"):
        B.batch_norm_train(x, w, b, rm, np.ones(3, np.float64))
    with pytest.raises(ValueError, match="eps must be a positive number"):
        B.batch_norm_train(x, w, b, rm, rv, eps=0.0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        B.batch_norm_train(x, w, b, rm, rv, momentum=1.5)
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        B.batch_norm_train(x.astype(np.int64), w, b, rm, rv)
    with pytest.raises(ValueError, match=r"shape \(N, C\) or \(N, C, ...\)"):
        B.batch_norm_train(np.ones(3, np.float32), w, b, rm, rv)
    with pytest.raises(ValueError, match="must not be empty"):
        B.batch_norm_eval(np.ones((0, 3), np.float32), w, b, rm, rv)
    y, mean, invstd = B.batch_norm_train(x, w, b, rm, rv)
    with pytest.raises(ValueError, match="dy has shape"):
        B.batch_norm_backward(np.ones((4, 4), np.float32), x, w, mean, invstd)
    with pytest.raises(ValueError, match=r"mean must be an array of shape \(3,\) and dtype float64"):
        B.batch_norm_backward(y, x, w, mean.astype(np.float32), invstd)
    with pytest.raises(RuntimeError, match="needs GPU"):
        B.batch_norm_eval(x, w, b, rm, rv, tier="cupy")
