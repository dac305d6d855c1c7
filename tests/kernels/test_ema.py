"""Weight EMA (kernels/ema): ema ← d·ema + (1 − d)·w, every tier against the reference.

Tolerance 1e-6: inputs rounded to float32 (6e-8) and two float32 roundings per element
(1 − d itself computed in float64 and rounded once); a wrong weight (d for 1 − d) or a missed
element is off by far more.
"""
import numpy as np
import pytest

from gpunet.ops.ema import ema_update
from gpunet.ops.registry import OPS
from gpunet.testing import Case, compare_tiers

SIZES = [1, 2, 3, 5, 17, 255, 1001, 65537]


def _fns(tiers):
    return {t: OPS["ema"].module(t).ema_update for t in ("reference", *tiers)}


def ema_case(sizes, big=None):
    draw = {"i": 0}

    def make(rng):
        n = big if (big and draw["i"] == 0) else int(rng.choice(sizes))
        draw["i"] += 1
        w = rng.standard_normal(n)
        ema = w + rng.standard_normal(n) * float(rng.choice([1e-3, 1.0]))
        decay = float(rng.choice([0.0, 0.5, 0.9, 0.999, 0.9999, 1.0]))
        return Case(inputs={"w": w}, inplace={"ema": ema}, scalars={"decay": decay}, label=f"n={n} d={decay}")
    return make


def test_numba_cpu_matches_reference():
    compare_tiers(_fns(["numba_cpu"]), ema_case(SIZES, big=(1 << 20) + 3), draws=20, seed=1).assert_below(1e-6)


def test_closed_form_and_endpoints(rng):
    w = rng.standard_normal(1001).astype(np.float32)
    e0 = rng.standard_normal(1001).astype(np.float32)
    ema = e0.copy()
    ema_update(ema, w, 0.9)
    np.testing.assert_allclose(ema, 0.9 * e0.astype(np.float64) + 0.1 * w, rtol=0, atol=1e-6)
    ema = e0.copy()
    ema_update(ema, w, 1.0)
    np.testing.assert_array_equal(ema, e0)  # d = 1 keeps the average
    ema_update(ema, w, 0.0)
    np.testing.assert_allclose(ema, w, rtol=0, atol=1e-6)  # d = 0 copies the weights (up to rounding of w − ema)
    same = w.copy()
    ema_update(same, w, 0.37)
    np.testing.assert_array_equal(same, w)  # the average of equal values stays exact


def test_repeated_updates_converge_geometrically(rng):
    w = rng.standard_normal(257)
    ema = np.zeros(257)
    for _ in range(50):
        ema_update(ema, w, 0.8)
    np.testing.assert_allclose(ema, (1 - 0.8**50) * w, rtol=1e-12)


def test_bad_input_is_rejected():
    a = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="decay"):
        ema_update(a, a.copy(), 1.5)
    with pytest.raises(ValueError, match="decay"):
        ema_update(a, a.copy(), float("nan"))
    with pytest.raises(TypeError, match="dtype"):
        ema_update(a, np.zeros(5, np.float64), 0.9)
    with pytest.raises(ValueError, match="elements"):
        ema_update(a, np.zeros(6, np.float32), 0.9)


def test_cuda_c_tier_on_the_cpu_emulator():
    """ema.cu and its launch code on the CPU: vector and scalar paths, grid-stride loops."""
    from cuda_host_emulator import require_compiler
    from optim_emulator import emulated, emulated_fn

    require_compiler()
    from gpunet.kernels.ema import cupy_tier

    for dtype, tol in ((np.float32, 1e-6), (np.float64, 1e-14)):
        fns = {"reference": _fns([])["reference"], "cuda_c_emulated": emulated_fn(cupy_tier, cupy_tier.ema_update)}
        compare_tiers(fns, ema_case([1, 3, 6, 1001, 20011]), draws=8, seed=5, dtype=dtype).assert_below(tol)
    w = np.arange(1, 1004, dtype=np.float32)
    ema = np.zeros(1004, np.float32)
    with emulated(cupy_tier):
        cupy_tier.ema_update(ema[1:], w, 0.75)  # unaligned: the scalar path
    assert ema[0] == 0.0
    np.testing.assert_allclose(ema[1:], 0.25 * w, rtol=1e-6)


@pytest.mark.cudasim
def test_numba_cuda_under_simulator():
    compare_tiers(_fns(["numba_cuda"]), ema_case([1, 5, 130, 300]), draws=4, seed=2).assert_below(1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["cupy", "numba_cuda"])
def test_gpu_tiers(tier):
    compare_tiers(_fns([tier]), ema_case(SIZES + [5_000_003], big=(1 << 20) + 3), draws=20,
                  seed=3).assert_below(1e-6)


@pytest.mark.gpu
def test_gpu_unaligned_view():
    import cupy

    w = cupy.arange(1, 1004, dtype=cupy.float32)
    ema = cupy.zeros(1004, dtype=cupy.float32)
    ema_update(ema[1:], w, 0.75)  # an unaligned view takes the scalar path
    assert float(ema[0]) == 0.0
    np.testing.assert_allclose(cupy.asnumpy(ema[1:]), 0.25 * np.arange(1, 1004), rtol=1e-6)
