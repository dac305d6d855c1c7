"""Dropout kernels (kernels/dropout): every tier against the reference (also at element offsets,
the shards of a batch), bit-identical masks across tiers, keep rate and scaling by a binomial
z-test, and argument checks of gpunet.ops.dropout.

Tolerances: the mask must match the reference exactly (error 0). y and dx: relative 1e-6. The
tiers multiply the float32-rounded input by the float32-rounded scale 1/(1−p) (one rounding,
relative 6e-8 each), the reference works in float64; a wrong or missing element shows as an
error of order 1. Same-dtype outputs of two tiers are compared bit for bit.
"""
import math

import numpy as np
import pytest

from gpunet import backend
from gpunet.kernels.common.philox import keep_threshold
from gpunet.ops import dropout as D
from gpunet.ops.dropout import dropout_backward, dropout_forward
from gpunet.ops.registry import OPS

tier_module = OPS["dropout"].module
from gpunet.testing import Case, compare_tiers

BIG = (1 << 20) + 5
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 255, 1001, 4095, 4096, 4097, 8193, 12347]
PS = [0.0, 0.1, 0.5, 0.75, 0.9, 0.999, 1 - 2**-30]
Z_LIMIT = 4.89  # two-sided normal tail of 1e-6: the false-alarm rate of each z-test below


def _wrap(mod, kind):
    """A compare_tiers function running ``mod``'s forward or backward."""
    if kind == "forward":
        def run(x, y, mask, seed, layer_id, step, p):
            mod.forward(x, y, mask, seed, layer_id, step, keep_threshold(p), 1.0 / (1.0 - p))
    else:
        def run(dy, mask_in, dx, p):
            xp = backend.get_array_module(dy)
            mod.backward(dy, xp.asarray(mask_in), dx, 1.0 / (1.0 - p))
    return run


def _fns(tiers, kind):
    return {t: _wrap(tier_module(t), kind) for t in ("reference", *tiers)}


def _case(sizes, big=None):
    draw = {"i": 0}

    def make(rng):
        i = draw["i"]
        draw["i"] += 1
        n = big if (big and i == 0) else int(rng.choice(sizes))
        shape = (n,) if rng.random() < 0.5 or n % 3 else (3, n // 3)
        p = float(PS[i % len(PS)]) if i < len(PS) else float(rng.uniform(0, 0.99))
        x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3)
        scalars = {"seed": int(rng.integers(0, 2**40)), "layer_id": int(rng.integers(0, 50)),
                   "step": int(rng.integers(0, 2**36)), "p": p}
        return Case(inputs={"x": x}, outputs={"y": (shape, None), "mask": (((n + 7) // 8,), np.uint8)},
                    scalars=scalars, label=f"shape={shape} p={p:.4g}")
    return make


def _bwd_case(sizes):
    def make(rng):
        n = int(rng.choice(sizes))
        p = float(rng.choice(PS))
        keep = rng.random(n) >= p
        mask = np.packbits(keep, bitorder="little")
        return Case(inputs={"dy": rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)},
                    outputs={"dx": ((n,), None)}, scalars={"mask_in": mask, "p": p}, label=f"n={n} p={p:.4g}")
    return make


def _check(report, tol=1e-6):
    report.assert_below(tol)
    for tier, worst in report.worst.items():
        if "mask" in worst:
            assert worst["mask"] == 0.0, f"{tier}: mask differs from the reference ({report.where[tier]['mask']})"


def test_forward_numba_cpu_matches_reference():
    for dtype in (np.float32, np.float64):
        _check(compare_tiers(_fns(["numba_cpu"], "forward"), _case(SIZES, big=BIG), draws=22, seed=1, dtype=dtype))


def test_backward_numba_cpu_matches_reference():
    _check(compare_tiers(_fns(["numba_cpu"], "backward"), _bwd_case(SIZES + [BIG]), draws=20, seed=2))


def _emulated_fns(kind):
    """The reference and the CUDA C tier run on the CPU emulator."""
    from cuda_host_emulator import emulated

    from gpunet.kernels.dropout import cupy_tier

    fns = _fns([], kind)
    inner = _wrap(cupy_tier, kind)

    def run(**kw):
        with emulated(cupy_tier):
            inner(**kw)
    fns["cuda_c_emulated"] = run
    return fns


def test_cuda_c_tier_on_the_cpu_emulator_matches_reference():
    from cuda_host_emulator import require_compiler

    require_compiler()
    small = [s for s in SIZES if s <= 8193]
    for dtype in (np.float32, np.float64):
        _check(compare_tiers(_emulated_fns("forward"), _case(small), draws=20, seed=3, dtype=dtype))
    _check(compare_tiers(_emulated_fns("backward"), _bwd_case(small), draws=10, seed=4))


def test_cuda_c_tier_scalar_path_on_unaligned_arrays():
    """Offset views are not 16-byte aligned: the kernels take their scalar path."""
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.dropout import cupy_tier

    require_compiler()
    rng = np.random.default_rng(5)
    n = 1001
    buf = rng.standard_normal(n + 1).astype(np.float32)
    x = buf[1:]
    assert x.ctypes.data % 16 != 0
    y, mask = np.full(n, np.nan, np.float32), np.zeros((n + 7) // 8, np.uint8)
    yb = np.full(n + 1, np.nan, np.float32)
    with emulated(cupy_tier):
        cupy_tier.forward(x, yb[1:], mask, 9, 2, 5, keep_threshold(0.3), 1 / 0.7)
        tier_module("numba_cpu").forward(x, y, m2 := np.zeros_like(mask), 9, 2, 5, keep_threshold(0.3), 1 / 0.7)
        assert np.array_equal(mask, m2) and np.array_equal(yb[1:], y)
        dx, dxb = np.empty(n, np.float32), np.full(n + 1, np.nan, np.float32)
        cupy_tier.backward(x, mask, dxb[1:], 1 / 0.7)
        tier_module("numba_cpu").backward(x, mask, dx, 1 / 0.7)
        assert np.array_equal(dxb[1:], dx)


def test_masks_and_outputs_are_bit_identical_across_cpu_tiers(rng):
    x = rng.standard_normal(12345).astype(np.float32)
    outs = {}
    for t in ("reference", "numba_cpu"):
        outs[t] = dropout_forward(x, 0.3, seed=123, layer_id=4, step=77, tier=t)
    assert np.array_equal(outs["reference"][1], outs["numba_cpu"][1])
    assert outs["reference"][0].tobytes() == outs["numba_cpu"][0].tobytes()


OFFSETS = [0, 1, 3, 5, 8, 37, 4093, 2**34 + 6]  # the last puts block b = g div 4 past 2^32
OFFSET_SIZES = [1, 7, 13, 1000, 4097, 12347]  # 4097, 12347: several numba_cpu chunks


def _offset_forward(mod, x, offset, p=0.4):
    """(y, mask) of ``mod``'s forward at ``offset``, as NumPy arrays (outputs prefilled with junk)."""
    xp = backend.get_array_module(x)
    y, mask = xp.full_like(x, np.nan), xp.full((x.size + 7) // 8, 0xAA, np.uint8)
    mod.forward(x, y, mask, 11, 3, 2**33 + 7, keep_threshold(p), 1.0 / (1.0 - p), offset)
    return backend.to_numpy(y), backend.to_numpy(mask)


def _check_offsets(run, sizes, offsets=OFFSETS, unaligned=False):
    """``run(x, offset)`` = (y, mask) equals the reference bit for bit, in float32 and float64, and
    the reference at offset o is elements o … of the reference on a tensor o elements longer.
    ``unaligned``: x is a view one element into its buffer (not 16-byte aligned)."""
    ref = tier_module("reference")
    for dtype in (np.float32, np.float64):
        for n in sizes:
            x = np.random.default_rng(n).standard_normal(n + 1).astype(dtype)
            x = x[1:] if unaligned else x[:n].copy()
            for o in offsets:
                want_y, want_mask = _offset_forward(ref, x, o)
                y, mask = run(x, o)
                assert y.tobytes() == want_y.tobytes(), (n, o, dtype)
                assert np.array_equal(mask, want_mask), (n, o, dtype)
                if o < 100:
                    long_y, long_mask = _offset_forward(ref, np.concatenate([np.ones(o, dtype), x]), 0)
                    assert want_y.tobytes() == long_y[o:].tobytes(), (n, o, dtype)
                    bits = np.unpackbits(long_mask, bitorder="little")[o:o + n]
                    assert np.array_equal(np.packbits(bits, bitorder="little"), want_mask), (n, o, dtype)


def test_offset_reference_draws_the_words_at_offset_plus_j():
    from gpunet.kernels.common.philox import dropout_words

    x = np.ones(1001, np.float32)
    for o in OFFSETS:
        y, mask = _offset_forward(tier_module("reference"), x, o)
        keep = dropout_words(x.size, 11, 3, 2**33 + 7, o) >= np.uint32(keep_threshold(0.4))
        assert np.array_equal(y != 0, keep) and np.array_equal(mask, np.packbits(keep, bitorder="little")), o


def test_offset_numba_cpu_matches_reference():
    mod = tier_module("numba_cpu")
    _check_offsets(lambda x, o: _offset_forward(mod, x, o), OFFSET_SIZES + [BIG])


def test_offset_cuda_c_tier_on_the_cpu_emulator_matches_reference():
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.dropout import cupy_tier

    require_compiler()

    def run(x, o):
        with emulated(cupy_tier):
            return _offset_forward(cupy_tier, x, o)
    _check_offsets(run, OFFSET_SIZES[:4])
    _check_offsets(run, [1001], [3, 37], unaligned=True)  # the scalar path


@pytest.mark.cudasim
def test_offset_numba_cuda_matches_reference_in_the_simulator():
    mod = tier_module("numba_cuda")
    _check_offsets(lambda x, o: _offset_forward(mod, x, o), OFFSET_SIZES[:4])


def test_offset_in_the_op_and_its_checks(rng):
    x = rng.standard_normal((5, 9)).astype(np.float32)
    whole, mask = dropout_forward(np.concatenate([x, x]), 0.3, 1, 2, 3)
    y, m = dropout_forward(x, 0.3, 1, 2, 3, offset=45)
    assert y.tobytes() == whole[5:].tobytes()
    assert np.array_equal(np.unpackbits(m, bitorder="little")[:45], np.unpackbits(mask, bitorder="little")[45:90])
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="offset must be a non-negative integer"):
            dropout_forward(x, 0.3, 1, 2, 3, offset=bad)
    with pytest.raises(ValueError, match=r"offset must be below 2\^62"):
        dropout_forward(x, 0.3, 1, 2, 3, offset=2**62)


def _z(k, n, q):
    return (k - n * q) / math.sqrt(n * q * (1 - q))


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_keep_rate_and_scale_binomial_z_test(p):
    """Kept count ~ Binomial(n, 1 − p): |z| < 4.89 (false alarm 1e-6 per test); kept values are
    exactly x/(1 − p) in float32, dropped ones exactly 0; the bit positions and successive steps
    are each unbiased."""
    n = 1 << 20
    x = np.ones(n, dtype=np.float32)
    q = 1.0 - keep_threshold(p) / 2**32
    y, mask = dropout_forward(x, p, seed=2024, layer_id=1, step=0)
    kept = y != 0
    assert abs(_z(int(kept.sum()), n, q)) < Z_LIMIT
    assert (y[kept] == np.float32(1 / (1 - p))).all()
    bits = np.unpackbits(mask, bitorder="little").astype(bool)
    assert np.array_equal(bits, kept)
    for lane in range(8):  # a packing or lane-selection bug would bias one position
        assert abs(_z(int(kept[lane::8].sum()), n // 8, q)) < Z_LIMIT, lane
    y2, _ = dropout_forward(x, p, seed=2024, layer_id=1, step=1)
    same = int(((y2 != 0) == kept).sum())  # independent steps agree with probability q² + (1−q)²
    assert abs(_z(same, n, q * q + (1 - q) ** 2)) < Z_LIMIT


def test_p_zero_keeps_everything_and_tiny_keep_probability(rng):
    x = rng.standard_normal(10007)
    y, mask = dropout_forward(x, 0.0, 1, 2, 3)
    assert np.array_equal(y, x) and np.unpackbits(mask, bitorder="little")[:10007].all()
    y, mask = dropout_forward(x, 1 - 2**-30, 1, 2, 3)
    assert (y == 0).all() and not mask.any()  # keep probability 2^-30: none kept among 1e4


@pytest.mark.oracle
def test_keep_rate_and_scale_match_torch_semantics():
    """PyTorch draws other bits, so only the law is compared: both keep about 1 − p of the
    elements (z-tests at 1e-6) and scale kept elements by 1/(1 − p)."""
    import torch

    n, p = 1 << 20, 0.3
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32) + 5.0
    yt = torch.nn.functional.dropout(torch.from_numpy(x), p, training=True).numpy()
    y, _ = dropout_forward(x, p, 7, 0, 0)
    for out in (y, yt):
        kept = out != 0
        assert abs(_z(int(kept.sum()), n, 1 - p)) < Z_LIMIT
        np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=1e-6)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan"), "0.5", None, True])
def test_bad_p_is_a_clear_error(bad):
    x = np.ones(8, np.float32)
    with pytest.raises(ValueError, match=r"p \(the probability of dropping an element\) must be in \[0, 1\)"):
        dropout_forward(x, bad, 0, 0, 0)
    with pytest.raises(ValueError, match="p "):
        dropout_backward(x, np.zeros(1, np.uint8), bad)


def test_bad_arguments_are_clear_errors():
    x = np.ones(10, np.float32)
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        dropout_forward(np.ones(10, np.int32), 0.5, 0, 0, 0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        dropout_forward(x, 0.5, -1, 0, 0)
    with pytest.raises(ValueError, match="step must be a non-negative integer"):
        dropout_forward(x, 0.5, 0, 0, 1.5)
    with pytest.raises(ValueError, match="mask must be the forward's uint8 array of 2 bytes"):
        dropout_backward(x, np.zeros(3, np.uint8), 0.5)
    with pytest.raises(ValueError, match="mask"):
        dropout_backward(x, np.zeros(2, np.float32), 0.5)
    with pytest.raises(RuntimeError, match="needs GPU"):
        dropout_forward(x, 0.5, 0, 0, 0, tier="cupy")
    assert D.mask_bytes(0) == 0 and D.mask_bytes(9) == 2


@pytest.mark.cudasim
def test_numba_cuda_matches_reference_in_the_simulator():
    small = [1, 3, 8, 13, 40, 101]
    _check(compare_tiers(_fns(["numba_cuda"], "forward"), _case(small), draws=6, seed=6))
    _check(compare_tiers(_fns(["numba_cuda"], "backward"), _bwd_case(small), draws=4, seed=7))


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["cupy", "numba_cuda"])
def test_gpu_tier_matches_reference_and_the_cpu_bit_for_bit(tier):
    import cupy

    sizes = SIZES + [1 << 20, (1 << 22) + 3]
    for dtype in (np.float32, np.float64):
        _check(compare_tiers(_fns([tier], "forward"), _case(sizes, big=(1 << 22) + 1), draws=20, seed=8, dtype=dtype))
    _check(compare_tiers(_fns([tier], "backward"), _bwd_case(sizes), draws=20, seed=9))
    # the same key gives the same bits (and the same float32 outputs) on the GPU and the CPU
    x = np.random.default_rng(1).standard_normal((513, 1027)).astype(np.float32)
    y_cpu, m_cpu = dropout_forward(x, 0.37, 5, 6, 7)
    y_gpu, m_gpu = dropout_forward(cupy.asarray(x), 0.37, 5, 6, 7, tier=tier)
    assert np.array_equal(m_gpu.get(), m_cpu)
    assert y_gpu.get().tobytes() == y_cpu.tobytes()
    dx_gpu = dropout_backward(cupy.asarray(x), m_gpu, 0.37, tier=tier)
    assert dx_gpu.get().tobytes() == dropout_backward(x, m_cpu, 0.37).tobytes()


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["cupy", "numba_cuda"])
def test_offset_gpu_tier_matches_reference(tier):
    import cupy

    mod = tier_module(tier)
    _check_offsets(lambda x, o: _offset_forward(mod, cupy.asarray(x), o), OFFSET_SIZES + [BIG, (1 << 22) + 3])


def test_keep_decision_at_the_threshold_is_word_ge_threshold():
    """An element whose word equals the threshold is kept, one just below it is dropped, in
    every CPU-runnable tier (p itself never lands there by chance)."""
    from cuda_host_emulator import available, emulated

    from gpunet.kernels.common.philox import dropout_words
    from gpunet.kernels.dropout import cupy_tier

    n = 1000
    words = dropout_words(n, 3, 1, 4)
    x = np.arange(1, n + 1, dtype=np.float32)
    mods = [tier_module("reference"), tier_module("numba_cpu")] + ([cupy_tier] if available() else [])
    for k in (0, 5, 998):
        thr = int(words[k])
        want = words >= np.uint32(thr)
        for mod in mods:
            y, mask = np.empty_like(x), np.empty((n + 7) // 8, np.uint8)
            if mod is cupy_tier:
                with emulated(cupy_tier):
                    mod.forward(x, y, mask, 3, 1, 4, thr, 2.0)
            else:
                mod.forward(x, y, mask, 3, 1, 4, thr, 2.0)
            assert y[k] == 2 * x[k] and np.array_equal(y != 0, want), mod.__name__
            assert np.array_equal(np.unpackbits(mask, bitorder="little")[:n].astype(bool), want), mod.__name__
