"""im2col kernels (kernels/im2col): the reference against the formula written as plain loops, its
adjoint identity, every tier against the reference, and argument checks of gpunet.ops.im2col.

Tolerances (relative, ‖out − ref‖/‖ref‖ against the float64 reference): im2col and the layout
moves copy values, so a float32 tier differs only by the rounding of its input to float32
(≤ 2⁻²⁴ ≈ 6e-8); col2im adds at most kh·kw float32 values per element: 1e-6 in float32. The bias
gradient sums N·H·W terms of both signs, so cancellation can magnify the input rounding
(relative to the small sum): 1e-5 for it. 1e-12 in float64. A wrong, missing or misplaced
element gives an error of order 1 (outputs are poisoned with NaN first).
"""
import numpy as np
import pytest

from gpunet import backend
from gpunet.kernels.im2col import reference as R
from gpunet.ops import im2col as ops
from gpunet.ops import registry
from gpunet.testing import Case, compare_tiers

# float32 against the float64 reference. dbias is a sum over N·H·W values of both signs whose
# rounding error grows with Σ|dy| / |Σdy|; on an H100 a 48-term sum came out 1.06e-6 off, so it
# gets 1e-5. Pure data movement (im2col) is exact up to the float32 cast.
TOL = {np.float32: {"default": 1e-6, "dbias": 1e-5}, np.float64: 1e-12}


def _geometry(rng, small=False):
    """Random (n, c, h, w, kh, kw, sh, sw, ph, pw) with the kernel fitting the padded input."""
    top = 6 if small else 10
    while True:
        n, c = int(rng.integers(1, 3 if small else 4)), int(rng.integers(1, 4))
        h, w = int(rng.integers(1, top)), int(rng.integers(1, top))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        if kh <= h + 2 * ph and kw <= w + 2 * pw:
            return n, c, h, w, kh, kw, sh, sw, ph, pw


def _shapes(g):
    n, c, h, w, kh, kw, sh, sw, ph, pw = g
    oh, ow = R.out_size(h, kh, sh, ph), R.out_size(w, kw, sw, pw)
    return (c * kh * kw, n * oh * ow), (n, c, oh, ow)


def _scalars(g):
    return dict(zip(("kh", "kw", "sh", "sw", "ph", "pw"), g[4:]))


def im2col_case(small=False):
    def make(rng):
        g = _geometry(rng, small)
        cols_shape, _ = _shapes(g)
        return Case(inputs={"x": rng.standard_normal(g[:4])}, outputs={"cols": (cols_shape, None)},
                    scalars=_scalars(g), label=str(g))
    return make


def col2im_case(small=False):
    def make(rng):
        g = _geometry(rng, small)
        cols_shape, _ = _shapes(g)
        return Case(inputs={"cols": rng.standard_normal(cols_shape)}, outputs={"dx": (g[:4], None)},
                    scalars=_scalars(g), label=str(g))
    return make


def layout_case(small=False, relu=False):
    def make(rng):
        n, c = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        spatial = tuple(int(s) for s in rng.integers(1, 4 if small else 9, size=2))
        p = spatial[0] * spatial[1]
        return Case(inputs={"yc": rng.standard_normal((c, n * p)), "bias": rng.standard_normal(c)},
                    outputs={"y": ((n, c) + spatial, None)}, scalars={"relu": relu},
                    label=f"n={n} c={c} {spatial} relu={relu}")
    return make


def to_cnhw_case(small=False, relu=False):
    def make(rng):
        n, c = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        spatial = tuple(int(s) for s in rng.integers(1, 4 if small else 9, size=2))
        p = spatial[0] * spatial[1]
        inputs = {"dy": rng.standard_normal((n, c) + spatial)}
        if relu:  # a ReLU output: zeros where the unit is off
            inputs["relu_y"] = np.maximum(rng.standard_normal((n, c) + spatial), 0)
        return Case(inputs=inputs, outputs={"dyc": ((c, n * p), None), "dbias": ((c,), None)},
                    label=f"n={n} c={c} {spatial} relu={relu}")
    return make


def _relu(case):
    return lambda small=False: case(small, relu=True)


CASES = {"im2col": im2col_case, "col2im": col2im_case, "cnhw_to_nchw": layout_case, "nchw_to_cnhw": to_cnhw_case,
         "cnhw_to_nchw+relu": _relu(layout_case), "nchw_to_cnhw+relu": _relu(to_cnhw_case)}


def _fns(name, tiers):
    return ops.OP.tier_functions(name.split("+")[0], tiers)


# ----------------------------------------------------------------------------- the specification
def _naive_im2col(x, kh, kw, sh, sw, ph, pw):
    n, c, h, w = x.shape
    oh, ow = R.out_size(h, kh, sh, ph), R.out_size(w, kw, sw, pw)
    cols = np.zeros((c * kh * kw, n * oh * ow))
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for b in range(n):
                    for r in range(oh):
                        for q in range(ow):
                            y, z = r * sh + i - ph, q * sw + j - pw
                            if 0 <= y < h and 0 <= z < w:
                                cols[(ci * kh + i) * kw + j, (b * oh + r) * ow + q] = x[b, ci, y, z]
    return cols


def test_reference_im2col_matches_the_formula_and_col2im_is_its_adjoint(rng):
    for _ in range(12):
        g = _geometry(rng)
        x = rng.standard_normal(g[:4])
        cols_shape, _ = _shapes(g)
        cols = np.full(cols_shape, np.nan)
        R.im2col(x, cols, *g[4:])
        np.testing.assert_array_equal(cols, _naive_im2col(x, *g[4:]))
        d = rng.standard_normal(cols_shape)
        dx = np.full(g[:4], np.nan)
        R.col2im(d, dx, *g[4:])
        # <im2col(x), d> = <x, col2im(d)> for every x, d: col2im is the transpose of im2col
        assert abs((cols * d).sum() - (x * dx).sum()) <= 1e-10 * (1 + np.abs(cols * d).sum())


def test_reference_layout_moves_match_the_formula(rng):
    n, c, p = 3, 4, 5
    yc, bias = rng.standard_normal((c, n * p)), rng.standard_normal(c)
    y = np.full((n, c, 1, p), np.nan)
    R.cnhw_to_nchw(yc, bias, y)
    for b in range(n):
        for ch in range(c):
            np.testing.assert_array_equal(y[b, ch, 0], yc[ch, b * p:(b + 1) * p] + bias[ch])
    dyc, db = np.full((c, n * p), np.nan), np.full(c, np.nan)
    R.nchw_to_cnhw(y, dyc, db)
    for ch in range(c):
        np.testing.assert_array_equal(dyc[ch], y[:, ch].reshape(-1))
    np.testing.assert_allclose(db, y.sum(axis=(0, 2, 3)), rtol=1e-14)


def test_fused_relu_layout_moves_equal_a_separate_relu_bit_for_bit(rng):
    """relu=True / relu_y= give exactly what ReLU's forward (numpy.maximum: NaN kept, −0 → 0)
    and backward (dy·[y > 0]) give around the plain moves, in every CPU tier and both dtypes."""
    n, c, p = 3, 5, 7
    for dtype in (np.float32, np.float64):
        yc = rng.standard_normal((c, n * p)).astype(dtype)
        yc[0, :4] = [np.nan, -0.0, 0.0, np.inf]
        bias = rng.standard_normal(c).astype(dtype)
        bias[0] = 0
        dy = rng.standard_normal((n, c, p)).astype(dtype)
        dy[0, 0, :2] = [np.inf, -1.0]
        for tier in ("reference", "numba_cpu"):
            plain = ops.cnhw_to_nchw(yc, bias, (n, c, p), tier=tier)
            fused = ops.cnhw_to_nchw(yc, bias, (n, c, p), relu=True, tier=tier)
            relu_y = np.maximum(plain, 0)
            assert fused.tobytes() == relu_y.tobytes(), tier
            dyc, db = ops.nchw_to_cnhw(dy, relu_y=fused, tier=tier)
            with np.errstate(invalid="ignore"):  # inf · 0 where the unit is off, as in ReLU.backward
                dyc0, db0 = ops.nchw_to_cnhw(dy * (relu_y > 0), tier=tier)
            assert dyc.tobytes() == dyc0.tobytes() and db.tobytes() == db0.tobytes(), tier


# ----------------------------------------------------------------------------- tiers
@pytest.mark.parametrize("name", list(CASES))
def test_numba_cpu_matches_reference(name):
    for dtype in (np.float32, np.float64):
        report = compare_tiers(_fns(name, ("reference", "numba_cpu")), CASES[name](),
                               draws=25, seed=11, dtype=dtype)
        report.assert_below(TOL[dtype])


def test_numba_cpu_larger_shapes_match_reference(rng):
    """A conv-sized case (parallel loops over many planes), plus non-contiguous input to the op."""
    x = rng.standard_normal((9, 5, 17, 15)).astype(np.float32)
    spaced = np.zeros((9, 10, 17, 15), np.float32)
    spaced[:, ::2] = x
    strided = spaced[:, ::2]
    assert not strided.flags.c_contiguous
    for geom in ((3, 3, 1, 1, 0, 0), (3, 3, 2, 2, 1, 1), (5, 4, 1, 3, 2, 1)):
        cols_shape, _ = _shapes(x.shape + geom)
        ref = np.empty(cols_shape)
        R.im2col(x.astype(np.float64), ref, *geom)
        got = ops.im2col(strided, geom[0], geom[1], geom[2:4], geom[4:6])
        np.testing.assert_array_equal(got, ref.astype(np.float32))


@pytest.mark.cudasim
@pytest.mark.parametrize("name", list(CASES))
def test_numba_cuda_under_simulator_matches_reference(name):
    report = compare_tiers(_fns(name, ("reference", "numba_cuda")), CASES[name](small=True),
                           draws=2, seed=12, dtype=np.float32)
    report.assert_below(TOL[np.float32])


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(CASES))
def test_gpu_tiers_match_reference(name):
    for dtype in (np.float32, np.float64):
        report = compare_tiers(_fns(name, ("reference", "numba_cuda", "cupy")), CASES[name](),
                               draws=20, seed=13, dtype=dtype)
        report.assert_below(TOL[dtype])


@pytest.fixture
def emulated_tier(monkeypatch):
    """The CUDA C tier's functions, each run on the CPU emulation of the CUDA C."""
    import cuda_host_emulator as emu
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.im2col import cupy_tier

    require_compiler()
    monkeypatch.setitem(emu.POINTEES, "int", np.int32)

    def wrap(name):
        def run(**kw):
            with emulated(cupy_tier):
                getattr(cupy_tier, name)(**kw)
        return run
    return wrap


@pytest.mark.parametrize("name", list(CASES))
def test_cuda_c_on_the_cpu_emulator_matches_reference(name, emulated_tier):
    fns = {"reference": getattr(R, name.split("+")[0]), "cuda_c_emulated": emulated_tier(name.split("+")[0])}
    for dtype in (np.float32, np.float64):
        compare_tiers(fns, CASES[name](small=True), draws=6, seed=14, dtype=dtype).assert_below(TOL[dtype])


# ----------------------------------------------------------------------------- ops
def test_ops_allocate_outputs_and_accept_out(rng):
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    cols = ops.im2col(x, 3, 2, (1, 2), (1, 0))
    assert cols.shape == (18, 2 * 6 * 2) and cols.dtype == np.float32
    out = np.full_like(cols, np.nan)
    assert ops.im2col(x, 3, 2, (1, 2), (1, 0), out=out) is out
    np.testing.assert_array_equal(out, cols)
    dx = ops.col2im(cols, x.shape, 3, 2, (1, 2), (1, 0))
    assert dx.shape == x.shape and np.isfinite(dx).all()
    y = ops.cnhw_to_nchw(rng.standard_normal((4, 2 * 7)).astype(np.float32), np.ones(4, np.float32), (2, 4, 7))
    dyc, db = ops.nchw_to_cnhw(y)
    assert dyc.shape == (4, 14) and db.shape == (4,)


def test_ops_reject_bad_arguments(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"im2col: kernel \(7, 3\) is larger than the padded input \(6, 6\)"):
        ops.im2col(x, 7, 3, (1, 1), (1, 1))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        ops.im2col(x, 3, 3, (0, 1), (0, 0))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ops.im2col(x[0], 3, 3, (1, 1), (0, 0))
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.im2col(x.astype(np.float16), 3, 3, (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"im2col\(out\): expected shape \(27, 8\)"):
        ops.im2col(x, 3, 3, (1, 1), (0, 0), out=np.empty((27, 9), np.float32))
    with pytest.raises(ValueError, match=r"col2im\(cols\): expected shape \(27, 8\)"):
        ops.col2im(np.zeros((27, 9), np.float32), x.shape, 3, 3, (1, 1), (0, 0))
    with pytest.raises(ValueError, match="cnhw_to_nchw: expected yc"):
        ops.cnhw_to_nchw(np.zeros((3, 5), np.float32), np.zeros(3, np.float32), (2, 3, 3))


def test_forced_tier_without_gpu_arrays_says_so(rng, monkeypatch):
    if backend.gpu_available():
        pytest.skip("a GPU is usable here")
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    with pytest.raises(RuntimeError, match="needs GPU"):
        ops.im2col(x, 3, 3, (1, 1), (0, 0), tier="cupy")
    monkeypatch.setenv("GPUNET_KERNELS", "reference")
    registry.reset()  # GPUNET_KERNELS is read at gn.use and on an explicit reset, not per call
    try:
        assert registry.mode() == "reference"
        np.testing.assert_array_equal(ops.im2col(x, 3, 3, (1, 1), (0, 0)),
                                      ops.im2col(x, 3, 3, (1, 1), (0, 0), tier="numba_cpu"))
    finally:
        monkeypatch.delenv("GPUNET_KERNELS")
        registry.reset()
