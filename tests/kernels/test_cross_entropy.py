"""Softmax cross-entropy (kernels/cross_entropy): every tier against the float64 reference, the
op against PyTorch, and the CUDA C on the CPU emulator.

Tolerances (relative, against the float64 reference): the tiers compute in float64 and round on
store, so float32 results are within a rounding or two of the reference (one more for the
gradient, whose e^x is stored in the output before it is divided): 1e-6; in float64 the tiers
differ from the reference only by exp, log and the order of the sums: 1e-12. NaN where a label
is out of range and ±inf must match exactly (the harness counts a mismatch as an infinite error).
"""
import numpy as np
import pytest

from gpunet.kernels.cross_entropy import numba_cpu as C
from gpunet.kernels.cross_entropy import reference as R
from gpunet.ops import cross_entropy as X
from gpunet.testing import Case, compare_tiers

TOL = {np.float32: 1e-6, np.float64: 1e-12}


def _case(max_rows=60, max_classes=40, big_rows=None):
    draw = {"i": 0}

    def make(rng):
        i, draw["i"] = draw["i"], draw["i"] + 1
        n = big_rows if (big_rows and i == 0) else int(rng.integers(1, max_rows))
        c = int(rng.choice([1, 2, 3, int(rng.integers(4, max_classes))]))
        z = rng.standard_normal((n, c)) * float(rng.choice([0.1, 3.0, 30.0]))
        y = rng.integers(0, c, n)
        kind = rng.choice(["plain", "bad labels", "extreme"], p=[0.5, 0.25, 0.25]) if i else "plain"
        if kind == "bad labels":
            y[rng.integers(n, size=rng.integers(1, 3))] = rng.choice([-1, c, c + 7, -(1 << 40)])
        elif kind == "extreme":
            z[rng.integers(n), rng.integers(c)] = rng.choice([-np.inf, 1e4, -1e4, 88.0])
        eps = float(rng.choice([0.0, 0.0, 0.1, 1.0]))
        norm = n if rng.random() < 0.7 else 1
        return Case(inputs={"z": z, "y": y}, outputs={"loss": ((1,), None), "grad": ((n, c), None)},
                    scalars={"eps": eps, "norm": norm}, label=f"({n}, {c}) {kind} eps={eps} W={norm}")
    return make


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference on −inf − (−inf): NaN, as meant
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_cpu_matches_reference(dtype):
    report = compare_tiers(X.OP.tier_functions("forward", ("reference", "numba_cpu")), _case(), draws=40,
                           seed=1, dtype=dtype)
    report.assert_below(TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_cpu_parallel_rows_match_reference(dtype):
    rows = C.PARALLEL_MIN // 8 + 5  # 8 classes and more: above the parallel threshold
    report = compare_tiers(X.OP.tier_functions("forward", ("reference", "numba_cpu")),
                           _case(max_rows=rows, big_rows=rows), draws=3, seed=2, dtype=dtype)
    report.assert_below(TOL[dtype])


def test_loss_does_not_depend_on_thread_count(rng):
    import numba

    z = rng.standard_normal((4 * C.PARALLEL_MIN // 10, 10)).astype(np.float32)
    y = rng.integers(0, 10, z.shape[0])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = X.cross_entropy(z, y)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = X.cross_entropy(z, y)
    finally:
        numba.set_num_threads(before)
    assert one[0] == many[0] and one[1].tobytes() == many[1].tobytes()


def test_a_bad_label_poisons_its_row_and_the_loss_only(rng):
    z = rng.standard_normal((5, 4))
    y = np.array([0, 4, 2, -1, 3])
    loss, grad = X.cross_entropy(z, y)
    assert np.isnan(loss)
    assert np.isnan(grad[[1, 3]]).all() and np.isfinite(grad[[0, 2, 4]]).all()
    good = X.cross_entropy(z[[0, 2, 4]], y[[0, 2, 4]], reduction="sum")[1]
    np.testing.assert_allclose(grad[[0, 2, 4]] * 5, good, rtol=1e-14)  # same rows, W = 5 against 1


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_op_matches_torch(rng, reduction, eps):
    import torch

    z = rng.standard_normal((33, 7)) * 4
    z[0, 3] = -np.inf  # a class with probability 0: finite without smoothing, +inf with it
    y = rng.integers(0, 7, 33)
    y[0] = 1
    loss, grad = X.cross_entropy(z, y, label_smoothing=eps, reduction=reduction)
    t = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(t, torch.tensor(y), reduction=reduction, label_smoothing=eps)
    ref.backward()
    if eps:
        assert loss == np.inf and ref.item() == np.inf
    else:
        assert float(loss) == pytest.approx(ref.item(), rel=1e-13)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_op_takes_any_integer_labels_and_strided_logits(rng):
    z = rng.standard_normal((6, 10)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    want = X.cross_entropy(np.ascontiguousarray(z[:, ::2]), y)
    for labels in (y.astype(np.int32), y.astype(np.uint8), y[::1]):
        got = X.cross_entropy(z[:, ::2], labels)
        assert got[0] == want[0] and got[1].tobytes() == want[1].tobytes()
        assert got[1].flags.c_contiguous and got[1].dtype == np.float32


def test_op_refuses_bad_arguments():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="z must be a float32 or float64"):
        X.cross_entropy(z.astype(np.float16), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="z must be"):
        X.cross_entropy(np.zeros(4, np.float32), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="3 class labels"):
        X.cross_entropy(z, np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="integer array"):
        X.cross_entropy(z, np.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        X.cross_entropy(z, np.zeros(3, np.int64), reduction="none")
    with pytest.raises(ValueError, match="label_smoothing"):
        X.cross_entropy(z, np.zeros(3, np.int64), label_smoothing=1.5)


@pytest.mark.cudasim
def test_numba_cuda_under_simulator_matches_reference():
    report = compare_tiers(X.OP.tier_functions("forward", ("reference", "numba_cuda")),
                           _case(max_rows=300, max_classes=12), draws=4, seed=3, dtype=np.float32)
    report.assert_below(TOL[np.float32])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_tiers_match_reference(dtype):
    report = compare_tiers(X.OP.tier_functions("forward", ("reference", "numba_cuda", "cupy")),
                           _case(max_rows=3000, max_classes=1000), draws=12, seed=4, dtype=dtype)
    report.assert_below(TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_c_on_the_cpu_emulator_matches_reference(dtype):
    """cross_entropy.cu and its launch code on the CPU: rows over several blocks and grid-stride
    turns (300 rows on one SM: 2 blocks of 256 threads), the total's strided partial sums."""
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.cross_entropy import cupy_tier

    require_compiler()

    def run(**kw):
        with emulated(cupy_tier) as emu:
            cupy_tier.forward(**kw)
        assert [name for name, _, _ in emu.launches] == [f"xent_rows_{suffix}", f"xent_total_{suffix}"]

    suffix = "f32" if dtype == np.float32 else "f64"
    report = compare_tiers({"reference": R.forward, "cuda_c_emulated": run},
                           _case(max_rows=600, max_classes=12, big_rows=300), draws=4, seed=5, dtype=dtype)
    report.assert_below(TOL[dtype])
