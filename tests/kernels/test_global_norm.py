"""Global L2 norm and non-finite flag (kernels/global_norm), every tier against the reference.

Tolerance for Σx²: relative 1e-6. The tiers get the float64 draws rounded to float32 (relative
error 6e-8 per value, so about 1.2e-7 on a square) and accumulate in float64, so the sums agree
to a few 1e-7 whatever the order; a dropped element or a float32 accumulation that overflows
shows as 1e-3 or Inf. The flag and the step counters must match exactly.
"""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.ops import global_norm as G
from gpunet.ops.registry import OPS
from gpunet.testing import Case, compare_tiers

BIG = (1 << 20) + 3
SIZES = [1, 2, 3, 4, 5, 7, 255, 257, 1023, 4099, 65537, 300001]


def _stats_fns(tiers, extra=None):
    def wrap(grad_stats):
        def run(x, sumsq, counters, stats0, count):
            xp = backend.get_array_module(x)
            stats = xp.array(stats0, dtype=np.float64)  # a copy: stats0 is shared by the tiers
            grad_stats(x, stats, count)
            sumsq[...] = stats[:1]
            counters[...] = stats[1:]
        return run
    fns = {t: OPS["global_norm"].module(t).grad_stats for t in ("reference", *tiers)}
    return {t: wrap(f) for t, f in {**fns, **(extra or {})}.items()}


def _scale_fns(tiers, extra=None):
    def wrap(scale_by_norm):
        def run(x, stats, max_norm):
            xp = backend.get_array_module(x)
            scale_by_norm(x, xp.asarray(stats, dtype=np.float64), max_norm)
        return run
    fns = {t: OPS["global_norm"].module(t).scale_by_norm for t in ("reference", *tiers)}
    return {t: wrap(f) for t, f in {**fns, **(extra or {})}.items()}


def stats_case(sizes, big=None):
    draw = {"i": 0}

    def make(rng):
        i = draw["i"]
        draw["i"] += 1
        n = big if (big and i == 0) else int(rng.choice(sizes))
        scale = float(10.0 ** rng.uniform(-30, 36))
        x = rng.standard_normal(n) * scale
        kind = rng.choice(["finite", "nan", "inf"], p=[0.6, 0.2, 0.2]) if i > 0 else "finite"
        if kind != "finite":
            x[rng.integers(n, size=rng.integers(1, 3))] = np.nan if kind == "nan" else rng.choice([np.inf, -np.inf])
        stats0 = np.array([rng.standard_normal(), rng.integers(0, 2), rng.integers(0, 4), rng.integers(0, 4)],
                          dtype=np.float64)
        return Case(inputs={"x": x}, outputs={"sumsq": ((1,), np.float64), "counters": ((3,), np.float64)},
                    scalars={"stats0": stats0, "count": bool(rng.random() < 0.7)}, label=f"n={n} {kind} {scale:.0e}")
    return make


def scale_case(sizes):
    def make(rng):
        n = int(rng.choice(sizes))
        x = rng.standard_normal(n) * float(10.0 ** rng.uniform(-5, 5))
        norm = float(np.linalg.norm(x))
        max_norm = norm * float(rng.choice([0.3, 0.999, 1.0, 1.001, 3.0]))
        return Case(inplace={"x": x}, scalars={"stats": np.array([norm**2, 0, 1, 0]), "max_norm": max_norm},
                    label=f"n={n} ratio={max_norm / norm:.3f}")
    return make


def test_grad_stats_numba_cpu_matches_reference():
    report = compare_tiers(_stats_fns(["numba_cpu"]), stats_case(SIZES, big=BIG), draws=24, seed=1)
    report.assert_below(1e-6)
    assert report.worst["numba_cpu"]["counters"] == 0.0  # flag and counters exact


def test_scale_by_norm_numba_cpu_matches_reference():
    compare_tiers(_scale_fns(["numba_cpu"]), scale_case(SIZES + [BIG]), draws=20, seed=2).assert_below(1e-6)


def test_global_norm_against_numpy_float64(rng):
    for dtype in (np.float32, np.float64):
        for n in (1, 3, 1001, BIG):
            x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)).astype(dtype)
            got = G.global_norm(x)
            assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == np.float64
            want = np.linalg.norm(x.astype(np.float64))
            assert abs(float(got) - want) <= 1e-12 * want, (dtype, n)


def test_huge_values_do_not_overflow(rng):
    x = (rng.standard_normal(4099) * 1e30).astype(np.float32)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(x * x))  # a naive float32 sum of squares overflows ...
    want = np.linalg.norm(x.astype(np.float64))
    for tier in ("reference", "numba_cpu"):
        got = float(G.global_norm(x, tier=tier))  # ... the float64 accumulation does not
        assert np.isfinite(got) and abs(got - want) <= 1e-12 * want


def test_flag_and_counters(rng):
    x = rng.standard_normal(1001).astype(np.float32)
    stats = G.grad_stats(x, count=True)
    assert list(stats[1:]) == [0.0, 1.0, 0.0]
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[rng.integers(1001)] = bad
        G.grad_stats(y, stats, count=True)
        assert stats[1] == 1.0
    assert list(stats[2:]) == [1.0, 3.0]
    G.grad_stats(x, stats)  # count=False leaves the counters alone, clears the flag
    assert list(stats[1:]) == [0.0, 1.0, 3.0]


def test_float64_chunk_overflow_is_not_a_nonfinite_flag():
    x = np.full(10, 1e200)
    stats = G.grad_stats(x)
    assert stats[0] == np.inf and stats[1] == 0.0  # documented limit: the sum overflows, the values are finite


def test_sum_does_not_depend_on_thread_count(rng):
    import numba

    x = rng.standard_normal(BIG).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = float(G.grad_stats(x)[0])
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = float(G.grad_stats(x)[0])
    finally:
        numba.set_num_threads(before)
    assert one == many


def test_bad_input_is_rejected():
    with pytest.raises(TypeError, match="float32 or float64"):
        G.global_norm(np.arange(5))
    with pytest.raises(ValueError, match="1-D"):
        G.global_norm(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="stats"):
        G.grad_stats(np.ones(3, np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="max_norm"):
        G.scale_by_norm(np.ones(3, np.float32), np.zeros(4), 0.0)


def test_clip_grad_norm_scales_in_place(rng):
    model = gn.Sequential(gn.Linear(7, 5), gn.ReLU(), gn.Linear(5, 3))
    g = model.arena.grads
    g[...] = rng.standard_normal(g.size)
    g[model.arena.num_parameters:] = 0
    before = np.linalg.norm(g.astype(np.float64))
    norm = gn.clip_grad_norm(model, before / 4)
    assert abs(float(norm) - before) <= 1e-6 * before
    assert abs(np.linalg.norm(g.astype(np.float64)) - before / 4) <= 1e-6 * before
    same = g.copy()
    gn.clip_grad_norm(model, before)  # already below: untouched
    np.testing.assert_array_equal(g, same)
    with pytest.raises(ValueError, match="max_norm"):
        gn.clip_grad_norm(model, -1)


def test_cuda_c_tier_on_the_cpu_emulator():
    """global_norm.cu and its launch code on the CPU: float4/double2 loads, tails, grid-stride loops,
    several blocks ending in the last-block reduction, and the ticket resetting between launches."""
    from cuda_host_emulator import require_compiler
    from optim_emulator import emulated_fn

    require_compiler()
    from gpunet.kernels.global_norm import cupy_tier

    sizes = [1, 2, 5, 1023, 4099, 12001]
    for dtype, seed, tol in ((np.float32, 31, 1e-6), (np.float64, 32, 1e-12)):
        for sm in (1, 3):
            fns = _stats_fns([], {"cuda_c_emulated": emulated_fn(cupy_tier, cupy_tier.grad_stats, sm)})
            report = compare_tiers(fns, stats_case(sizes), draws=6, seed=seed + sm, dtype=dtype)
            report.assert_below(tol)
            assert report.worst["cuda_c_emulated"]["counters"] == 0.0
        fns = _scale_fns([], {"cuda_c_emulated": emulated_fn(cupy_tier, cupy_tier.scale_by_norm)})
        compare_tiers(fns, scale_case(sizes), draws=6, seed=seed, dtype=dtype).assert_below(tol)

def test_cuda_c_grad_stats_with_more_blocks_than_threads_on_the_cpu_emulator(monkeypatch):
    """With more blocks than threads per block, the last block loops over the partials (built with
    32 threads per block so that the emulator runs few threads)."""
    from cuda_host_emulator import require_compiler
    from optim_emulator import emulated

    require_compiler()
    from gpunet.kernels.global_norm import cupy_tier

    monkeypatch.setattr(cupy_tier, "NORM_THREADS", 32)
    x = np.random.default_rng(0).standard_normal(70 * 32 * 4 + 1).astype(np.float32)
    stats = np.zeros(4)
    with emulated(cupy_tier, sm_count=10, defines="#define NORM_THREADS 32\n") as emu:
        cupy_tier.grad_stats(x[:-1], stats, True)
        assert emu.launches[-1][1:] == ((70, 1), (32, 1))
        cupy_tier.grad_stats(x[1:], stats, True)  # unaligned: the scalar path
        assert cupy_tier._workspace(emu)[2][0] == 0  # the ticket is back at zero
    assert stats[2] == 2 and abs(stats[0] - np.sum(x[1:].astype(np.float64) ** 2)) <= 1e-12 * stats[0]
    x[77] = np.inf
    with emulated(cupy_tier, sm_count=10, defines="#define NORM_THREADS 32\n"):
        cupy_tier.grad_stats(x[:-1], stats, True)
    assert list(stats[1:]) == [1.0, 2.0, 1.0]


@pytest.mark.cudasim
def test_numba_cuda_under_simulator():
    sizes = [1, 3, 130, 300]
    compare_tiers(_stats_fns(["numba_cuda"]), stats_case(sizes), draws=5, seed=3).assert_below(1e-6)
    compare_tiers(_scale_fns(["numba_cuda"]), scale_case(sizes), draws=4, seed=4).assert_below(1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["cupy", "numba_cuda"])
def test_gpu_tiers(tier):
    sizes = SIZES + [5_000_003]
    report = compare_tiers(_stats_fns([tier]), stats_case(sizes, big=BIG), draws=24, seed=5)
    report.assert_below(1e-6)
    assert report.worst[tier]["counters"] == 0.0
    compare_tiers(_scale_fns([tier]), scale_case(sizes), draws=20, seed=6).assert_below(1e-6)


@pytest.mark.gpu
def test_gpu_global_norm_stays_on_device_and_handles_unaligned_views(rng):
    import cupy

    x = rng.standard_normal(1 << 22).astype(np.float32)
    xd = cupy.asarray(x)
    for lo in (0, 1, 2, 3):  # views at every alignment
        got = G.global_norm(xd[lo:])
        assert isinstance(got, cupy.ndarray) and got.shape == ()
        want = np.linalg.norm(x[lo:].astype(np.float64))
        assert abs(float(got) - want) <= 1e-12 * want
    stats = G.new_stats(xd)
    for k in range(3):  # the last-block ticket resets itself between launches
        G.grad_stats(xd, stats, count=True)
    assert float(stats[2]) == 3.0
