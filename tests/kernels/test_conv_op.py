"""The whole convolution of the im2col op (conv_forward/conv_backward in kernels/im2col): every tier against the float64 reference, forward and backward,
with and without bias, ReLU and dx; the CPU tier's results independent of the thread count;
its fallback without a callable BLAS; and the calling thread's BLAS setting left as it was.

Tolerance: relative 1e-5 in float32 (each value is a sum of up to a few hundred products, added in
another order than the float64 reference), 1e-12 in float64 (PyTorch's conv2d is the oracle of
the Conv2d layer in tests/layers/test_conv.py).
"""
import numba
import numpy as np
import pytest

from gpunet.kernels.common import blas
from gpunet.kernels.common.scratch import Scratch
from gpunet.kernels.im2col import cpu_conv, numba_cpu
from gpunet.ops import im2col as ops
from gpunet.testing.tiers import relative_error

TOL = {np.float32: 1e-5, np.float64: 1e-12}

# (N, C, H, W), OC, (kh, kw), stride, padding
GEOMETRIES = [
    ((3, 2, 7, 6), 4, (3, 3), (1, 1), (0, 0)),
    ((5, 1, 9, 9), 3, (3, 2), (2, 1), (1, 0)),
    ((2, 3, 5, 5), 2, (1, 1), (1, 1), (0, 0)),
    ((4, 4, 6, 8), 5, (5, 3), (3, 2), (2, 1)),
    ((17, 2, 6, 6), 3, (3, 3), (1, 1), (1, 1)),  # more images than chunks
    ((1, 2, 4, 4), 2, (4, 4), (1, 1), (0, 0)),   # one image, a 1×1 output
    # stride 1 and "same" width: im2col and col2im copy whole (i, j) rows at once
    ((3, 3, 7, 5), 4, (5, 5), (1, 1), (2, 2)),
    ((2, 2, 2, 3), 3, (5, 3), (1, 1), (2, 1)),   # kernel taller than the image: rows wholly in padding
    ((2, 2, 6, 4), 2, (3, 1), (1, 1), (0, 0)),   # ow == w without padding, oh < h
    ((40, 3, 5, 5), 4, (3, 3), (1, 1), (1, 1)),  # several images per chunk
    # stride 1 with C·kh·kw >= direct.MIN_TAPS: the direct convolution (kernels/im2col/direct.py)
    ((40, 32, 5, 5), 4, (3, 3), (1, 1), (1, 1)),
    ((200, 32, 6, 6), 3, (3, 3), (1, 1), (1, 1)),
    ((3, 17, 6, 9), 19, (3, 2), (1, 1), (2, 0)),  # channels not a multiple of a tile, padding in h only
    ((2, 9, 5, 4), 33, (4, 4), (1, 1), (3, 3)),   # padding up to kernel size − 1: outputs wider than the input
    ((4, 36, 3, 3), 2, (1, 1), (1, 1), (0, 0)),   # 1×1 at stride 1
    # strides above 1 with enough taps: direct over the phases of the padded input
    ((40, 32, 10, 10), 4, (3, 3), (2, 2), (1, 1)),
    ((200, 32, 12, 12), 3, (3, 3), (2, 2), (1, 1)),
    ((3, 17, 9, 8), 19, (3, 3), (2, 2), (1, 1)),   # odd height: phases of unequal rows
    ((2, 12, 11, 10), 7, (4, 3), (3, 2), (2, 1)),  # stride 3 × 2, kernel 4 × 3
    ((4, 8, 7, 9), 5, (3, 5), (2, 1), (0, 2)),     # stride 2 × 1, no padding in h
    ((2, 16, 3, 3), 6, (3, 3), (2, 2), (1, 1)),    # a 2 × 2 output
    # several images per product (cpu_conv.group: small outputs, K >= 256; a kernel smaller than its stride
    # has phases without taps, so columns), full and cut-short groups
    ((40, 64, 10, 10), 4, (2, 2), (3, 3), (0, 0)),
    ((272, 64, 7, 7), 3, (2, 2), (3, 3), (0, 0)),
    ((3, 2, 5, 5), 3, (1, 1), (1, 1), (1, 1)),    # padding as large as the kernel: columns, not direct
    # small outputs of many images: the batch in the vector lanes (lanes.py), full and partial groups
    ((32, 16, 4, 4), 17, (3, 3), (1, 1), (1, 1)),
    ((37, 9, 6, 5), 5, (3, 3), (2, 2), (1, 1)),
    ((50, 12, 5, 5), 3, (3, 3), (1, 1), (0, 0)),
]


def _case(rng, g, bias, relu):
    shape, oc, (kh, kw), stride, padding = g
    x = rng.standard_normal(shape)
    w = rng.standard_normal((oc, shape[1], kh, kw))
    b = rng.standard_normal(oc) if bias else None
    ref = _run("reference", x, w, b, stride, padding, relu, rng=np.random.default_rng(1))
    return x, w, b, ref


def _run(tier, x, w, b, stride, padding, relu, rng, need_dx=True, dtype=np.float64, xp=np):
    cast = (lambda a: None if a is None else xp.asarray(a.astype(dtype)))
    x, w, b = cast(x), cast(w), cast(b)
    scratch = Scratch()
    y = ops.conv2d_forward(x, w, b, stride, padding, relu, scratch, tier=tier)
    dy = cast(rng.standard_normal(y.shape))
    dw = xp.full(w.shape, np.nan, dtype=dtype)
    db = xp.full(b.shape, np.nan, dtype=dtype) if b is not None else None
    dx = ops.conv2d_backward(x, w, dy, y if relu else None, dw, db, need_dx, stride, padding, scratch, tier=tier)
    out = {"y": y, "dw": dw, "db": db, "dx": dx}
    return {k: (None if v is None else (v.get() if xp is not np else v)) for k, v in out.items()}


def _compare(tier, dtype, xp=np, geometries=GEOMETRIES):
    rng = np.random.default_rng(0)
    for g in geometries:
        for bias, relu, need_dx in ((True, False, True), (False, True, True), (True, True, False)):
            x, w, b, ref = _case(rng, g, bias, relu)
            got = _run(tier, x, w, b, g[3], g[4], relu, np.random.default_rng(1), need_dx, dtype, xp)
            for name, r in ref.items():
                if r is None or (name == "dx" and not need_dx):
                    assert got[name] is None, (name, g)
                    continue
                err = relative_error(got[name], r)
                assert err <= TOL[dtype], f"{tier} {name} {err:.2e} for {g} bias={bias} relu={relu}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_cpu_matches_reference(dtype):
    assert blas.BLAS is not None, "no BLAS callable from Numba found in this process"
    _compare("numba_cpu", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_cpu_without_blas_falls_back_to_the_composed_product(dtype, monkeypatch):
    monkeypatch.setattr(blas, "BLAS", None)
    _compare("numba_cpu", dtype, geometries=GEOMETRIES[:3])


# columns and one image per product; direct at stride 2; direct at stride 1; the batch in the lanes
@pytest.mark.parametrize("shape,oc,stride", [((37, 3, 9, 9), 6, 1), ((40, 32, 10, 10), 4, 2), ((37, 8, 9, 9), 20, 1),
                                             ((48, 16, 5, 5), 20, 1)])
def test_numba_cpu_results_do_not_depend_on_the_thread_count(shape, oc, stride, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((oc, shape[1], 3, 3)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    runs = []
    previous = numba.get_num_threads()
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU thread only")
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            runs.append(_run("numba_cpu", x, w, b, (stride, stride), (1, 1), True, np.random.default_rng(2),
                             dtype=np.float32))
        finally:
            numba.set_num_threads(previous)
    for name in runs[0]:
        assert runs[0][name].tobytes() == runs[-1][name].tobytes(), name


@pytest.mark.parametrize("in_lanes", [False, True], ids=["direct", "lanes"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_direct_layouts_match_reference_on_every_direct_geometry(in_lanes, dtype, monkeypatch):
    """direct.py and lanes.py, each forced on every geometry direct.supported admits (numba_cpu
    chooses between them by shape)."""
    from gpunet.kernels.im2col import direct, lanes

    monkeypatch.setattr(lanes, "chosen", lambda *shapes: in_lanes)
    found = [g for g in GEOMETRIES if direct.supported(g[0][1], *g[2], *g[3], *g[4], dtype)]
    assert len(found) >= 12
    _compare("numba_cpu", dtype, geometries=found)


def test_small_outputs_of_many_images_put_the_batch_in_the_lanes():
    from gpunet.kernels.im2col import lanes

    g = lanes.group_size(np.float32)
    assert g == 16 or g == 24  # AVX-512 or AVX2 tiles
    f = np.float32
    assert lanes.chosen((64, 64, 7, 7), 3, 3, 1, 1, 1, 1, f)       # resnet_small's 64→64 layer
    assert lanes.chosen((64, 32, 14, 14), 3, 3, 2, 2, 1, 1, f)     # ... and its 32→64 at stride 2
    assert not lanes.chosen((64, 16, 28, 28), 3, 3, 1, 1, 1, 1, f)  # 28×28: direct.py wastes 8%
    assert not lanes.chosen((64, 16, 28, 28), 3, 3, 2, 2, 1, 1, f)  # 14×14 at stride 2: 14%
    assert not lanes.chosen((1, 64, 7, 7), 3, 3, 1, 1, 1, 1, f)     # one image: a group of empty lanes
    assert [lanes.chosen((n, 64, 7, 7), 3, 3, 1, 1, 1, 1, f) for n in (64, 65)] == [True, g == 24]


def test_the_calling_threads_blas_setting_is_restored(rng):
    x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    mine = 2
    blas.BLAS.set_threads_local(mine)
    for _ in range(20):  # restores racing from the parallel tasks left 1 here about once in ten
        _run("numba_cpu", x, w, None, (1, 1), (0, 0), False, rng, dtype=np.float32)
        assert blas.BLAS.set_threads_local(mine) == mine  # returns the value in force before this call


def test_chunks_and_groups_depend_on_shapes_only_and_bound_the_buffers():
    assert cpu_conv.chunks(64, 64, 288) == 16
    assert cpu_conv.chunks(3, 64, 288) == 3
    assert cpu_conv.chunks(0, 4, 4) == 1
    big = cpu_conv.chunks(64, 512, 4608)
    assert big == 2 and big * 512 * 4608 <= 2 * cpu_conv.PARTIAL_LIMIT
    assert [cpu_conv.group(p, 576) for p in (784, 196, 49, 36, 1)] == [1, 1, 6, 8, 16]
    assert cpu_conv.group(49, 144) == 1


@pytest.mark.cudasim
def test_numba_cuda_under_simulator_matches_reference():
    _compare("numba_cuda", np.float32, geometries=GEOMETRIES[:2])


@pytest.mark.gpu
@pytest.mark.parametrize("tier", ["numba_cuda", "cupy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_tiers_match_reference(tier, dtype):
    import cupy

    _compare(tier, dtype, xp=cupy)


def test_enough_taps_take_the_direct_path(rng):
    from gpunet.kernels.im2col import direct

    assert direct.supported(8, 3, 3, 1, 1, 1, 1, np.float32)
    assert direct.supported(8, 3, 3, 2, 2, 1, 1, np.float32)        # stride 2: four phases
    assert not direct.supported(1, 3, 3, 1, 1, 1, 1, np.float32)    # 9 taps: columns are faster
    assert not direct.supported(64, 1, 1, 2, 2, 0, 0, np.float32)   # 1×1 at stride 2: three phases without taps
    assert not direct.supported(8, 1, 1, 1, 1, 1, 1, np.float32)    # padding as large as the kernel
    assert not direct.supported(40, 3, 3, 1, 1, 1, 1, np.float16)
    for c, k, stride, direct_path in ((8, 3, 1, True), (8, 3, 2, True), (40, 1, 2, False)):
        x = rng.standard_normal((4, c, 6, 6)).astype(np.float32)
        w = rng.standard_normal((5, c, k, k)).astype(np.float32)
        scratch = Scratch()
        padding = (k // 2, k // 2)
        y = ops.conv2d_forward(x, w, None, (stride, stride), padding, False, scratch, tier="numba_cpu")
        ops.conv2d_backward(x, w, np.ones_like(y), None, np.empty_like(w), None, True, (stride, stride), padding,
                            scratch, tier="numba_cpu")
        keys = set(scratch.buffers)
        assert ("direct_xpad" in keys and "direct_g" in keys and "cols" not in keys) == direct_path, keys
        assert ("cols" in keys) != direct_path, keys
    x = rng.standard_normal((64, 32, 7, 7)).astype(np.float32)  # small outputs: the batch in the lanes
    w = rng.standard_normal((8, 32, 3, 3)).astype(np.float32)
    scratch = Scratch()
    y = ops.conv2d_forward(x, w, None, (1, 1), (1, 1), False, scratch, tier="numba_cpu")
    ops.conv2d_backward(x, w, np.ones_like(y), None, np.empty_like(w), None, True, (1, 1), (1, 1), scratch,
                        tier="numba_cpu")
    keys = set(scratch.buffers)
    assert {"lanes_xg", "lanes_g", "lanes_gpad"} <= keys and not {"direct_xpad", "cols"} & keys, keys


def test_phase_planes_at_stride_one_are_the_padded_planes(rng):
    """_phase_planes with stride (1, 1) writes what _pad_planes writes (the forward's stride-1 case)."""
    from gpunet.kernels.im2col import direct

    x = rng.standard_normal((3, 5, 7)).astype(np.float32).reshape(-1)
    for ph, pw in ((0, 0), (1, 2), (2, 1)):
        hp, wp = 5 + 2 * ph, 7 + 2 * pw
        a = np.full(3 * hp * wp + 4, np.nan, np.float32)
        b = a.copy()
        direct._pad_planes.py_func(x, 0, 35, 7, 3, 5, 7, a, ph, pw, 4)
        direct._phase_planes.py_func(x, 0, 35, 7, 3, 5, 7, b, 1, 1, ph, pw, hp, wp, 4)
        assert a.tobytes() == b.tobytes()
        xp = np.pad(x.reshape(3, 5, 7), ((0, 0), (ph, ph), (pw, pw)))
        assert np.array_equal(a[:-4].reshape(3, hp, wp), xp) and not a[-4:].any()
    for sh, sw, ph, pw in ((2, 2, 1, 1), (3, 2, 2, 0), (2, 1, 0, 2)):
        hp, wp = 5 + 2 * ph, 7 + 2 * pw
        hq, wq = -(-hp // sh), -(-wp // sw)
        c = np.full(3 * sh * sw * hq * wq + 2, np.nan, np.float32)
        direct._phase_planes.py_func(x, 0, 35, 7, 3, 5, 7, c, sh, sw, ph, pw, hq, wq, 2)
        xp = np.pad(x.reshape(3, 5, 7), ((0, 0), (ph, sh * hq - hp + ph), (pw, sw * wq - wp + pw)))
        want = xp.reshape(3, hq, sh, wq, sw).transpose(0, 2, 4, 1, 3)  # (c, a, b, u, v) = xpad[c, sh·u + a, sw·v + b]
        assert np.array_equal(c[:-2].reshape(want.shape), want) and not c[-2:].any()


_WITHOUT_AVX512 = r"""
import llvmlite.binding as llvm
features = llvm.get_host_cpu_features


def without_avx512():
    found = features()  # a FeatureMap, whose flatten() Numba calls
    found["avx512f"] = False
    return found


llvm.get_host_cpu_features = without_avx512
import numpy as np
from gpunet.kernels.im2col import direct, tiles
from gpunet.kernels.common.scratch import Scratch
from gpunet.ops import im2col as ops
from gpunet.testing.tiers import relative_error
assert (tiles.MR, tiles.NV, tiles.MA, tiles.KB, tiles.lanes(np.float32), tiles.lanes(np.float64)) == (4, 3, 4, 3, 8, 4)
rng = np.random.default_rng(0)
for shape, oc, k, st, pad in (((3, 17, 6, 9), 19, (3, 2), (1, 1), (2, 0)), ((2, 8, 5, 5), 5, (3, 3), (1, 1), (1, 1)),
                              ((3, 17, 9, 8), 19, (3, 3), (2, 2), (1, 1)), ((30, 8, 5, 5), 5, (3, 3), (1, 1), (1, 1)),
                              ((48, 8, 8, 8), 5, (3, 3), (2, 2), (1, 1))):
    x = rng.standard_normal(shape)
    w = rng.standard_normal((oc, shape[1]) + k)
    assert direct.supported(shape[1], *k, *st, *pad, np.float64)
    got, want = [], []
    for tier, out in (("numba_cpu", got), ("reference", want)):
        s = Scratch()
        y = ops.conv2d_forward(x, w, None, st, pad, True, s, tier=tier)
        dw = np.empty_like(w)
        dx = ops.conv2d_backward(x, w, np.cos(y), y, dw, None, True, st, pad, s, tier=tier)
        out += [y, dw, dx]
    assert all(relative_error(g, r) <= 1e-12 for g, r in zip(got, want)), [relative_error(g, r) for g, r in zip(got, want)]
from gpunet.kernels.im2col import lanes
assert lanes.group_size(np.float64) == 12  # the last two shapes: the batch in the lanes, 12 float64 a group
assert lanes.chosen((30, 8, 5, 5), 3, 3, 1, 1, 1, 1, np.float64) and lanes.chosen((48, 8, 8, 8), 3, 3, 2, 2, 1, 1, np.float64)
print("ok")
"""


def test_direct_convolution_with_avx2_sized_tiles(tmp_path):
    """The tiles' sizes on a CPU without AVX-512 (4 rows of 3 vectors of 8 float32 or 4 float64 lanes; dot tiles of
    4 × 3 sums), checked here by hiding the feature from the process (its own Numba cache: the kernels differ)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_AVX512], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout[-2000:] + proc.stderr[-3000:]
