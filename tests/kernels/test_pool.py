"""Pooling kernels (kernels/pool): the reference against the formula written as loops, every tier
against the reference, NaN and tie rules, and argument checks of gpunet.ops.pool.

Tolerances (relative, against the float64 reference): max pooling selects values, so a float32
tier differs only by the rounding of its input (≤ 2⁻²⁴ ≈ 6e-8) and its argmax must match exactly;
average pooling adds at most kh·kw float32 values per output: 1e-6 in float32, 1e-12 in float64.
"""
import numpy as np
import pytest

from gpunet.kernels.pool import reference as R
from gpunet.ops import pool as ops
from gpunet.testing import Case, compare_tiers

TOL = {np.float32: 1e-6, np.float64: 1e-12}


def _geometry(rng, small=False):
    top = 6 if small else 11
    while True:
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        h, w = int(rng.integers(1, top)), int(rng.integers(1, top))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
        if kh <= h + 2 * ph and kw <= w + 2 * pw:
            oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            return (n, c, h, w), (n, c, oh, ow), (kh, kw, sh, sw, ph, pw)


def _sc(geom):
    return dict(zip(("kh", "kw", "sh", "sw", "ph", "pw"), geom))


def max_fwd_case(small=False):
    def make(rng):
        xs, ys, geom = _geometry(rng, small)
        return Case(inputs={"x": rng.standard_normal(xs)}, outputs={"y": (ys, None), "idx": (ys, np.int32)},
                    scalars=_sc(geom), label=str((xs, geom)))
    return make


def max_bwd_case(small=False):
    def make(rng):
        xs, ys, geom = _geometry(rng, small)
        y, idx = np.empty(ys), np.empty(ys, np.int32)
        R.maxpool2d_forward(rng.standard_normal(xs), y, idx, *geom)
        return Case(inputs={"dy": rng.standard_normal(ys), "idx": idx}, outputs={"dx": (xs, None)},
                    scalars=_sc(geom), label=str((xs, geom)))
    return make


def avg_fwd_case(small=False):
    def make(rng):
        xs, ys, geom = _geometry(rng, small)
        return Case(inputs={"x": rng.standard_normal(xs)}, outputs={"y": (ys, None)},
                    scalars={**_sc(geom), "scale": 1.0 / (geom[0] * geom[1])}, label=str((xs, geom)))
    return make


def avg_bwd_case(small=False):
    def make(rng):
        xs, ys, geom = _geometry(rng, small)
        return Case(inputs={"dy": rng.standard_normal(ys)}, outputs={"dx": (xs, None)},
                    scalars={**_sc(geom), "scale": 1.0 / (geom[0] * geom[1])}, label=str((xs, geom)))
    return make


CASES = {"maxpool2d_forward": max_fwd_case, "maxpool2d_backward": max_bwd_case,
         "avgpool2d_forward": avg_fwd_case, "avgpool2d_backward": avg_bwd_case}


def _check(report, dtype):
    report.assert_below(TOL[dtype])
    for tier, worst in report.worst.items():
        if "idx" in worst:
            assert worst["idx"] == 0.0, f"{tier}: argmax differs ({report.where[tier]['idx']})"


def test_reference_matches_the_formula(rng):
    for _ in range(10):
        xs, ys, (kh, kw, sh, sw, ph, pw) = _geometry(rng)
        x = rng.standard_normal(xs)
        y, idx, a = np.empty(ys), np.empty(ys, np.int32), np.empty(ys)
        R.maxpool2d_forward(x, y, idx, kh, kw, sh, sw, ph, pw)
        R.avgpool2d_forward(x, a, kh, kw, sh, sw, ph, pw, 1.0 / (kh * kw))
        h, w = xs[2:]
        for b, c, r, q in np.ndindex(*ys):
            rows = [i for i in range(r * sh - ph, r * sh - ph + kh) if 0 <= i < h]
            cols = [j for j in range(q * sw - pw, q * sw - pw + kw) if 0 <= j < w]
            win = x[b, c][np.ix_(rows, cols)]
            assert y[b, c, r, q] == win.max()
            k = int(np.argmax(win))  # the first maximum in row-major order
            assert idx[b, c, r, q] == rows[k // len(cols)] * w + cols[k % len(cols)]
            assert a[b, c, r, q] == pytest.approx(win.sum() / (kh * kw), rel=1e-12)
        dy = rng.standard_normal(ys)
        dx, dxa = np.empty(xs), np.empty(xs)
        R.maxpool2d_backward(dy, idx, dx, kh, kw, sh, sw, ph, pw)
        R.avgpool2d_backward(dy, dxa, kh, kw, sh, sw, ph, pw, 1.0 / (kh * kw))
        # both backward passes are the adjoints of their (linear, for fixed argmax) forwards
        gathered = np.take_along_axis(x.reshape(xs[0], xs[1], -1), idx.reshape(ys[0], ys[1], -1).astype(np.int64), 2)
        assert (dy.reshape(gathered.shape) * gathered).sum() == pytest.approx((dx * x).sum(), rel=1e-10)
        assert (dy * a).sum() == pytest.approx((dxa * x).sum(), rel=1e-10)


@pytest.mark.parametrize("name", list(CASES))
def test_numba_cpu_matches_reference(name):
    for dtype in (np.float32, np.float64):
        report = compare_tiers(ops.OP.tier_functions(name, ("reference", "numba_cpu")), CASES[name](),
                               draws=25, seed=21, dtype=dtype)
        _check(report, dtype)


def test_max_2x2_fast_path_and_nan_rule(rng):
    """Kernel 2 stride 2 takes an unrolled path; a NaN in a window wins (the last NaN, as PyTorch),
    ties go to the first maximum; the general path follows the same rules."""
    from gpunet.kernels.pool import numba_cpu as C

    x = rng.standard_normal((3, 4, 10, 12))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[0, 0, :2, :2] = 1.5  # a tie over a whole window
    x[0, 1, 0, 0], x[0, 1, 1, 1] = np.nan, np.nan
    for geom in ((2, 2, 2, 2, 0, 0), (3, 3, 1, 1, 1, 1), (2, 3, 2, 1, 1, 0)):
        ys = (3, 4, (10 + 2 * geom[4] - geom[0]) // geom[2] + 1, (12 + 2 * geom[5] - geom[1]) // geom[3] + 1)
        outs = []
        for mod in (R, C):
            y, idx = np.full(ys, -7.0), np.full(ys, -1, np.int32)
            mod.maxpool2d_forward(x, y, idx, *geom)
            outs.append((y, idx))
        np.testing.assert_array_equal(outs[0][0], outs[1][0])
        np.testing.assert_array_equal(outs[0][1], outs[1][1])
    y, idx = outs[0]
    y2, idx2 = np.empty((3, 4, 5, 6)), np.empty((3, 4, 5, 6), np.int32)
    C.maxpool2d_forward(x, y2, idx2, 2, 2, 2, 2, 0, 0)
    assert idx2[0, 0, 0, 0] == 0 and y2[0, 0, 0, 0] == 1.5
    assert np.isnan(y2[0, 1, 0, 0]) and idx2[0, 1, 0, 0] == 1 * 12 + 1


@pytest.mark.cudasim
@pytest.mark.parametrize("name", list(CASES))
def test_numba_cuda_under_simulator_matches_reference(name):
    report = compare_tiers(ops.OP.tier_functions(name, ("reference", "numba_cuda")), CASES[name](small=True),
                           draws=2, seed=22, dtype=np.float32)
    _check(report, np.float32)


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(CASES))
def test_gpu_tiers_match_reference(name):
    for dtype in (np.float32, np.float64):
        report = compare_tiers(ops.OP.tier_functions(name, ("reference", "numba_cuda", "cupy")), CASES[name](),
                               draws=20, seed=23, dtype=dtype)
        _check(report, dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_cuda_c_on_the_cpu_emulator_matches_reference(name, monkeypatch):
    import cuda_host_emulator as emu
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.pool import cupy_tier

    require_compiler()
    monkeypatch.setitem(emu.POINTEES, "int", np.int32)

    def run(**kw):
        with emulated(cupy_tier):
            getattr(cupy_tier, name)(**kw)

    fns = {"reference": getattr(R, name), "cuda_c_emulated": run}
    for dtype in (np.float32, np.float64):
        _check(compare_tiers(fns, CASES[name](small=True), draws=5, seed=24, dtype=dtype), dtype)


def test_ops_check_geometry(rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    y, idx = ops.maxpool2d_forward(x, ((2, 2), (2, 2), (0, 0)))
    assert y.shape == (2, 3, 2, 2) and idx.dtype == np.int32
    with pytest.raises(ValueError, match=r"maxpool2d: kernel \(8, 2\) is larger than the padded input \(7, 7\)"):
        ops.maxpool2d_forward(x, ((8, 2), (1, 1), (1, 1)))
    with pytest.raises(ValueError, match="padding <= kernel/2"):
        ops.avgpool2d_forward(x, ((2, 2), (1, 1), (2, 0)))
    with pytest.raises(ValueError, match=r"maxpool2d_backward: expected dy and idx of shape \(2, 3, 2, 2\)"):
        ops.maxpool2d_backward(y[:, :2], idx, x.shape, ((2, 2), (2, 2), (0, 0)))
    with pytest.raises(ValueError, match="4-D input"):
        ops.avgpool2d_forward(x[0], ((2, 2), (2, 2), (0, 0)))
