"""Philox4x32-10 (kernels/common/philox.py and philox.cuh) against the Random123 known-answer
vectors, in every form it runs in, and the dropout stream's documented mapping
(seed, layer, step, element) -> 32-bit word."""
import numpy as np
import pytest
from numba import cuda, njit

from gpunet.kernels.common import philox as P

# Random123 kat_vectors, philox4x32 with 10 rounds: counter (4 words), key (2 words), result.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
U = np.uint64


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_known_answers_python_scalars_and_numpy_arrays(ctr, key, want):
    assert [int(w) for w in P.philox4x32_10(*map(U, ctr), *map(U, key))] == list(want)
    arrays = [np.full(3, c, dtype=np.uint64) for c in ctr]
    out = P.philox4x32_10(*arrays, *map(U, key))
    assert all((o == w).all() for o, w in zip(out, want))


def test_known_answers_numba_cpu():
    f = P.philox_njit()

    @njit
    def run(c0, c1, c2, c3, k0, k1):
        return f(c0, c1, c2, c3, k0, k1)

    for ctr, key, want in KAT:
        assert [int(w) for w in run(*map(U, ctr), *map(U, key))] == list(want)


def test_known_answers_cuda_c_header_on_the_cpu_emulator():
    from cuda_host_emulator import emulated, require_compiler

    from gpunet.kernels.dropout import cupy_tier

    require_compiler()
    rows = np.array([list(c) + list(k) for c, k, _ in KAT], dtype=np.uint32)
    out = np.zeros((len(KAT), 4), dtype=np.uint32)
    with emulated(cupy_tier):
        cupy_tier.philox(rows, out)
    assert out.tolist() == [list(w) for _, _, w in KAT]


@pytest.mark.cudasim
def test_known_answers_numba_cuda_device_function():
    dev = cuda.jit(device=True)(P.philox4x32_10)

    @cuda.jit
    def kern(rows, out):
        i = cuda.grid(1)
        if i < rows.shape[0]:
            a, b, c, d = dev(rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3], rows[i, 4], rows[i, 5])
            out[i, 0] = a
            out[i, 1] = b
            out[i, 2] = c
            out[i, 3] = d

    rows = np.array([list(c) + list(k) for c, k, _ in KAT], dtype=np.uint64)
    out = np.zeros((len(KAT), 4), dtype=np.uint64)
    kern[1, 4](rows, out)
    assert out.tolist() == [list(w) for _, _, w in KAT]


@pytest.mark.gpu
def test_known_answers_cuda_c_on_the_gpu():
    import cupy

    from gpunet.kernels.dropout import cupy_tier

    rows = cupy.asarray([list(c) + list(k) for c, k, _ in KAT], dtype=cupy.uint32)
    out = cupy.zeros((len(KAT), 4), dtype=cupy.uint32)
    cupy_tier.philox(rows, out)
    assert out.get().tolist() == [list(w) for _, _, w in KAT]


@pytest.mark.parametrize("seed,layer,step", [(0, 0, 0), (7, 3, 11), (2**32 + 5, 2**33 + 1, 2**32 + 9),
                                             (2**32 - 1, 2**32 - 1, 2**64 - 1)])
def test_dropout_word_mapping(seed, layer, step, rng):
    n = 1003
    words = P.dropout_words(n, seed, layer, step)
    assert words.dtype == np.uint32 and words.shape == (n,)
    for i in [0, 1, 2, 3, 4, 5, n - 1] + list(rng.integers(0, n, 8)):
        b = int(i) // 4
        ctr = (b & 0xFFFFFFFF, b >> 32, step & 0xFFFFFFFF, (step >> 32) & 0xFFFFFFFF)
        key = (seed & 0xFFFFFFFF, layer & 0xFFFFFFFF)
        assert words[i] == int(P.philox4x32_10(*map(U, ctr), *map(U, key))[int(i) % 4])


@pytest.mark.parametrize("offset", [0, 1, 3, 5, 8, 37, 2**34 + 6, 2**62 - 1001])
def test_dropout_words_at_an_offset_are_the_words_of_offset_plus_j(offset):
    n = 1001
    words = P.dropout_words(n, 7, 3, 11, offset)
    assert words.dtype == np.uint32 and words.shape == (n,)
    if offset < 100:
        assert np.array_equal(words, P.dropout_words(offset + n, 7, 3, 11)[offset:])
    for j in [0, 1, 2, 3, 4, n - 1]:
        g = offset + j
        b = g // 4
        assert words[j] == int(P.philox4x32_10(U(b & 0xFFFFFFFF), U(b >> 32), U(11), U(0), U(7), U(3))[g % 4])
    assert P.dropout_words(0, 7, 3, 11, offset).shape == (0,)


def test_streams_differ_by_seed_layer_and_step():
    base = P.dropout_words(4096, 1, 2, 3)
    for other in [(2, 2, 3), (1, 3, 3), (1, 2, 4), (1, 2, 3 + 2**32)]:
        w = P.dropout_words(4096, *other)
        assert (w == base).mean() < 0.01, other


def test_keep_threshold():
    assert P.keep_threshold(0.0) == 0          # keeps every element
    assert P.keep_threshold(0.5) == 2**31
    assert P.keep_threshold(0.25) == 2**30
    assert P.keep_threshold(1 - 2**-34) == 2**32 - 1  # rounds to 2^32, clamped: keeps 1 in 2^32
    assert P.keep_threshold(0.1) == round(0.1 * 2**32)
    for bad in (1.0, -0.01, float("nan"), 2.0):
        with pytest.raises(ValueError, match="p must be in"):
            P.keep_threshold(bad)
    with pytest.raises(ValueError, match="step"):
        P.dropout_counter_hi(-1)
