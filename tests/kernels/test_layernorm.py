"""Layer-norm kernels (kernels/layernorm): every tier against the float64 reference, and argument
checks of gpunet.ops.layernorm.

Inputs are drawn in float64 and rounded to float32 before the reference sees them, so the float32
tiers and the reference work on the same numbers. Tolerances (‖out − ref‖/‖ref‖): float32 1e-6
(every tier accumulates and normalizes in float64 and rounds once), float64 1e-9 (the large-mean
draw turns the 1e-16 rounding of μ into 1e-10 of x − μ). One draw per run has rows whose mean
lies 10⁶ standard deviations from zero (1e4 ± 1e-2): a one-pass E[x²] − E[x]² loses about 1e-4
of the variance there, far above the tolerance.
"""
import numpy as np
import pytest

from gpunet import backend
from gpunet.ops import layernorm as L
from gpunet.ops.registry import OPS
from gpunet.testing import Case, compare_tiers

tier_module = OPS["layernorm"].module

TOL = {np.float32: 1e-6, np.float64: 1e-9}
CPU_SHAPES = [(1, 1), (1, 2), (2, 3), (3, 5), (7, 13), (33, 70), (130, 9), (64, 257), (5, 1024), (2, 1500), (1, 77)]
BIG = [(513, 257), (3, 40000)]  # over numba_cpu's serial limit: many rows, and a few long ones
EMU_SHAPES = [(1, 1), (2, 3), (9, 33), (17, 32), (3, 1025), (2, 1300), (100, 3), (70, 5)]


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _draw_x(rng, shape, i):
    if i == 2:  # large mean, small spread
        return f32(1e4 + 1e-2 * rng.standard_normal(shape))
    return f32(rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2) + rng.uniform(-5, 5) * rng.random())


def _pick(rng, shapes, big, i):
    return big[i] if i < len(big) else shapes[int(rng.integers(len(shapes)))]


def forward_case(shapes, big=()):
    draw = {"i": 0}

    def make(rng):
        i = draw["i"]
        draw["i"] += 1
        M, D = shape = _pick(rng, shapes, big, i)
        return Case(inputs={"x": _draw_x(rng, shape, i), "weight": f32(rng.uniform(0.5, 2, D) * rng.choice([-1, 1], D)),
                            "bias": f32(rng.standard_normal(D))},
                    outputs={"y": (shape, None), "save_mean": ((M,), np.float64), "save_invstd": ((M,), np.float64)},
                    scalars={"eps": float(rng.choice([1e-5, 1e-3, 0.1])) if D > 1 else 0.5}, label=f"{shape} draw {i}")
    return make


def backward_case(shapes, big=()):
    draw = {"i": 0}

    def make(rng):
        i = draw["i"]
        draw["i"] += 1
        M, D = shape = _pick(rng, shapes, big, i)
        x = _draw_x(rng, shape, i)
        eps = float(rng.choice([1e-5, 0.1])) if D > 2 else 0.5  # two values: dx nearly cancels unless eps matters
        mean = x.mean(axis=1)
        invstd = 1.0 / np.sqrt(((x - mean[:, None]) ** 2).mean(axis=1) + eps)
        return Case(inputs={"dy": f32(rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)), "x": x,
                            "weight": f32(rng.uniform(0.5, 2, D) * rng.choice([-1, 1], D))},
                    outputs={"dx": (shape, None), "dweight": ((D,), None), "dbias": ((D,), None)},
                    scalars={"mean": mean, "invstd": invstd}, label=f"{shape} draw {i}")
    return make


def _backward(mod):
    def run(dy, x, weight, dx, dweight, dbias, mean, invstd):
        xp = backend.get_array_module(x)  # the saved statistics are float64 in every tier
        mod.backward(dy, x, weight, xp.asarray(mean), xp.asarray(invstd), dx, dweight, dbias)
    return run


def _fns(tiers, kind, wrap=lambda t, f: f):
    out = {}
    for t in ("reference", *tiers):
        mod = tier_module(t)
        out[t] = wrap(t, mod.forward if kind == "forward" else _backward(mod))
    return out


def _run_all(fns, shapes, big=(), draws=20, seed=0, dtypes=(np.float32, np.float64)):
    for dtype in dtypes:
        compare_tiers(fns("forward"), forward_case(shapes, big), draws=draws, seed=seed, dtype=dtype) \
            .assert_below(TOL[dtype])
        compare_tiers(fns("backward"), backward_case(shapes, big), draws=draws, seed=seed + 1, dtype=dtype) \
            .assert_below(TOL[dtype])


def test_numba_cpu_matches_reference():
    fns = lambda kind: _fns(["numba_cpu"], kind)  # noqa: E731
    _run_all(fns, CPU_SHAPES, big=BIG, draws=20, seed=10, dtypes=(np.float32,))
    _run_all(fns, CPU_SHAPES, draws=8, seed=20, dtypes=(np.float64,))


def test_numba_cpu_result_does_not_depend_on_the_thread_count():
    import numba

    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 400)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w = rng.standard_normal(400).astype(np.float32)
    outs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            y, mean, invstd = L.layer_norm(x, w, w, tier="numba_cpu")
            outs.append((y, *L.layer_norm_backward(dy, x, w, mean, invstd, tier="numba_cpu")))
        finally:
            numba.set_num_threads(previous)
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


def test_large_means_keep_their_variance():
    """Rows 1e4 ± 1e-2 (float32): x̂ to float32 precision, where E[x²] − E[x]² would lose 1e-4."""
    rng = np.random.default_rng(1)
    x = (1e4 + 1e-2 * rng.standard_normal((64, 300))).astype(np.float32)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-12)
    one, zero = np.ones(300, np.float32), np.zeros(300, np.float32)
    for tier in ("reference", "numba_cpu"):
        y, _, _ = L.layer_norm(x, one, zero, eps=1e-12, tier=tier)
        assert np.abs(y - want).max() < 1e-5, tier


# ------------------------------------------------------------------ CUDA C tier on the CPU emulator
def _emulated(kind):
    from cuda_host_emulator import emulated

    from gpunet.kernels.layernorm import cupy_tier

    inner = cupy_tier.forward if kind == "forward" else _backward(cupy_tier)
    calls = {"n": 0}

    def run(**kw):
        calls["n"] += 1  # alternate the SM count: different chunkings of the column reduction
        with emulated(cupy_tier, sm_count=1 + calls["n"] % 3):
            inner(**kw)
    return {**_fns([], kind), "cuda_c_emulated": run}


def test_cuda_c_tier_on_the_cpu_emulator_matches_reference():
    from cuda_host_emulator import require_compiler

    require_compiler()
    _run_all(_emulated, EMU_SHAPES, draws=8, seed=30)


@pytest.mark.parametrize("shape,block,chunks", [((9, 33), (32, 8), 1), ((3, 1025), (256, 1), 1),
                                                ((200, 3), (32, 8), 7)])
def test_cuda_c_tier_launch_geometry(shape, block, chunks):
    """Short rows share a block (32 threads each), long rows get 256 threads; the column reduction
    splits many rows into chunks that the finalize adds."""
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.layernorm import cupy_tier

    require_compiler()
    rng = np.random.default_rng(4)
    M, D = shape
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(D).astype(np.float32)
    b = rng.standard_normal(D).astype(np.float32)
    outs = {}
    for name in ("reference", "emulated"):
        mod = tier_module("reference") if name == "reference" else cupy_tier
        y, dx = np.empty_like(x), np.empty_like(x)
        mean, invstd = np.empty(M), np.empty(M)
        dw, db = np.empty(D, np.float32), np.empty(D, np.float32)
        with emulated(cupy_tier, sm_count=7) as emu:
            mod.forward(x, w, b, y, mean, invstd, 1e-5)
            mod.backward(dy, x, w, mean, invstd, dx, dw, db)
            launches = {nm: (g, bl) for nm, g, bl in emu.launches}
        outs[name] = (y, mean, invstd, dx, dw, db)
    for a, r in zip(outs["emulated"], outs["reference"]):
        assert np.linalg.norm(a - r) <= 1e-6 * np.linalg.norm(r)
    assert launches["ln_forward_f32"][1] == launches["ln_dx_f32"][1] == block
    assert launches["ln_dwdb_partial_f32"][0][1] == chunks


@pytest.mark.cudasim
def test_numba_cuda_matches_reference_in_the_simulator():
    shapes = [(1, 1), (2, 3), (3, 5), (2, 130)]
    fns = lambda kind: _fns(["numba_cuda"], kind)  # noqa: E731
    compare_tiers(fns("forward"), forward_case(shapes), draws=4, seed=50).assert_below(1e-6)
    compare_tiers(fns("backward"), backward_case(shapes), draws=4, seed=51).assert_below(1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["cupy", "numba_cuda"])
def test_gpu_tier_matches_reference(tier):
    shapes = CPU_SHAPES + EMU_SHAPES + [(4096, 768), (64, 4096), (8, 65536)]
    _run_all(lambda kind: _fns([tier], kind), shapes, big=[(20000, 1024), (3, 400000)], draws=16, seed=60)


# ------------------------------------------------------------------ the op: shapes and checks
def test_op_normalizes_the_trailing_dimensions():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal((4, 5)).astype(np.float32)
    y, mean, invstd = L.layer_norm(x, w, b, ndim=2)
    assert y.shape == x.shape and y.dtype == np.float32 and mean.shape == invstd.shape == (6,)
    x64 = x.astype(np.float64)
    m = x64.mean((2, 3), keepdims=True)
    want = (x64 - m) / np.sqrt(x64.var((2, 3), keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    dx, dw, db = L.layer_norm_backward(np.ones_like(x), x[:, :, :, :].copy(order="F"), w, mean, invstd, ndim=2)
    assert dx.shape == x.shape and dw.shape == db.shape == (4, 5)
    np.testing.assert_allclose(db, np.full((4, 5), 6.0))


def test_bad_arguments_are_clear_errors():
    x = np.ones((3, 4), np.float32)
    one, zero = np.ones(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="layer_norm: x must be a float32 or float64 array"):
        L.layer_norm(x.astype(np.int32), one, zero)
    with pytest.raises(ValueError, match=r"layer_norm: ndim .* must be in 1..2"):
        L.layer_norm(x, one, zero, ndim=3)
    with pytest.raises(ValueError, match=r"layer_norm: weight must be an array of shape \(4,\) and dtype float32"):
        L.layer_norm(x, np.ones(3, np.float32), zero)
    with pytest.raises(ValueError, match=r"bias must be an array of shape \(4,\) and dtype float32, got float64"):
        L.layer_norm(x, one, np.zeros(4))
    with pytest.raises(ValueError, match="eps must be a positive number"):
        L.layer_norm(x, one, zero, eps=0.0)
    with pytest.raises(ValueError, match="x must not be empty"):
        L.layer_norm(np.ones((0, 4), np.float32), one, zero)
    _, mean, invstd = L.layer_norm(x, one, zero)
    with pytest.raises(ValueError, match=r"layer_norm_backward: dy must be an array of shape \(3, 4\)"):
        L.layer_norm_backward(np.ones((3, 5), np.float32), x, one, mean, invstd)
    with pytest.raises(ValueError, match=r"mean must be an array of shape \(3,\) and dtype float64"):
        L.layer_norm_backward(x, x, one, mean.astype(np.float32), invstd)
    with pytest.raises(ValueError, match=r"dweight must be an array of shape \(4,\)"):
        L.layer_norm_backward(x, x, one, mean, invstd, dweight=np.empty(5, np.float32))
