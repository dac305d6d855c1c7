"""Element-wise activation kernels (kernels/activation): the CPU tier gives the reference's bits
(the formulas of the layers before they became kernels), every tier matches the float64
reference, and the CUDA C runs on the CPU emulator.

Tolerances (relative, against the float64 reference): relu, leaky_relu and their backwards are
one or two roundings per element (≤ 2⁻²³ for float32); tanh, sigmoid and their backwards go
through exp/tanh, whose float32 versions are within a few ulp: 1e-6. 1e-12 in float64.
"""
import numpy as np
import pytest

from gpunet.kernels.activation import numba_cpu as C
from gpunet.kernels.activation import reference as R
from gpunet.ops import activation as ops
from gpunet.testing import Case, compare_tiers

TOL = {np.float32: 1e-6, np.float64: 1e-12}
SLOPE = 0.05
FORWARD = {"relu": (), "leaky_relu": (SLOPE,), "tanh": (), "sigmoid": ()}
BACKWARD = {"relu": "relu_backward", "leaky_relu": "leaky_relu_backward", "tanh": "tanh_backward",
            "sigmoid": "sigmoid_backward"}


def _x(rng, shape):
    x = rng.standard_normal(shape) * 4
    flat = x.reshape(-1)
    flat[:6] = [0.0, -0.0, 40.0, -40.0, 1e-30, -1e-30][: flat.size]
    return x


def forward_case(name, small=False):
    def make(rng):
        shape = tuple(int(s) for s in rng.integers(1, 6 if small else 40, size=2))
        scalars = {"slope": SLOPE} if name == "leaky_relu" else {}
        return Case(inputs={"x": _x(rng, shape)}, outputs={"y": (shape, None)}, scalars=scalars, label=str(shape))
    return make


def backward_case(name, small=False):
    def make(rng):
        shape = tuple(int(s) for s in rng.integers(1, 6 if small else 40, size=2))
        x = _x(rng, shape)
        y = np.empty_like(x)
        getattr(R, name)(x, y, *FORWARD[name])
        scalars = {"slope": SLOPE} if name == "leaky_relu" else {}
        return Case(inputs={"dy": rng.standard_normal(shape), "y": y}, outputs={"dx": (shape, None)},
                    scalars=scalars, label=str(shape))
    return make


CASES = {**{n: forward_case(n) for n in FORWARD}, **{BACKWARD[n]: backward_case(n) for n in FORWARD}}
SMALL = {**{n: forward_case(n, True) for n in FORWARD}, **{BACKWARD[n]: backward_case(n, True) for n in FORWARD}}


@pytest.mark.parametrize("name", list(FORWARD))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [100_003])  # above the threshold below which the tier runs the reference itself
def test_numba_cpu_gives_the_reference_bits(name, dtype, size, rng):
    """Same operations in the same order as the NumPy formulas: identical bits, NaN, ±inf and
    signed zeros included, forward and backward."""
    assert C.PARALLEL_MIN < size
    x = _x(rng, (size,)).astype(dtype)
    x[6:10] = [np.nan, np.inf, -np.inf, -0.0]
    dy = rng.standard_normal(size).astype(dtype)
    dy[10:12] = [np.inf, np.nan]
    with np.errstate(invalid="ignore", over="ignore"):
        ref_y, y = np.empty_like(x), np.empty_like(x)
        getattr(R, name)(x, ref_y, *FORWARD[name])
        getattr(C, name)(x, y, *FORWARD[name])
        assert y.tobytes() == ref_y.tobytes()
        ref_dx, dx = np.empty_like(x), np.empty_like(x)
        getattr(R, BACKWARD[name])(dy, ref_y, ref_dx, *FORWARD[name])
        getattr(C, BACKWARD[name])(dy, ref_y, dx, *FORWARD[name])
        assert dx.tobytes() == ref_dx.tobytes()


@pytest.mark.parametrize("name", list(CASES))
def test_numba_cpu_matches_reference(name):
    for dtype in (np.float32, np.float64):
        report = compare_tiers(ops.OP.tier_functions(name, ("reference", "numba_cpu")), CASES[name],
                               draws=6, seed=3, dtype=dtype)
        report.assert_below(TOL[dtype])


def test_ops_allocate_new_outputs_and_fall_back_for_other_dtypes(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = ops.relu(x)
    assert y is not x and y.dtype == np.float32 and not np.shares_memory(y, x)
    assert ops.relu(x) is not y  # a new array each call: a caller may keep an output
    np.testing.assert_array_equal(ops.relu(x[:, ::2]), np.maximum(x[:, ::2], 0))  # non-contiguous input
    h = x.astype(np.float16)
    assert ops.sigmoid(h).dtype == np.float16  # float16 runs the reference formulas
    dx = ops.tanh_backward(x.astype(np.float64), ops.tanh(x))  # dy float64, y float32: NumPy's promotion
    assert dx.dtype == np.float64


@pytest.mark.cudasim
@pytest.mark.parametrize("name", list(SMALL))
def test_numba_cuda_under_simulator_matches_reference(name):
    report = compare_tiers(ops.OP.tier_functions(name, ("reference", "numba_cuda")), SMALL[name],
                           draws=2, seed=4, dtype=np.float32)
    report.assert_below(TOL[np.float32])


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(CASES))
def test_gpu_tiers_match_reference(name):
    for dtype in (np.float32, np.float64):
        report = compare_tiers(ops.OP.tier_functions(name, ("reference", "numba_cuda", "cupy")), CASES[name],
                               draws=6, seed=5, dtype=dtype)
        report.assert_below(TOL[dtype])


@pytest.mark.parametrize("name", list(SMALL))
def test_cuda_c_on_the_cpu_emulator_matches_reference(name, monkeypatch):
    import cuda_host_emulator as emu
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.activation import cupy_tier

    require_compiler()

    def run(**kw):
        with emulated(cupy_tier):
            getattr(cupy_tier, name)(**kw)
    for dtype in (np.float32, np.float64):
        report = compare_tiers({"reference": getattr(R, name), "cuda_c_emulated": run}, SMALL[name],
                               draws=3, seed=6, dtype=dtype)
        report.assert_below(TOL[dtype])
