"""kernels/common/jit.py: Numba CPU code divides as IEEE 754 does, and that changes no bits."""
import math

import numba
import numpy as np
import pytest

from gpunet.kernels.common.jit import njit
from gpunet.kernels.optim_update import numba_cpu as optim


def _quotient(a, b):
    return a / b


def test_a_division_by_zero_gives_inf_or_nan_not_an_exception():
    ieee = njit(_quotient)
    assert ieee(1.0, 0.0) == math.inf and ieee(-1.0, 0.0) == -math.inf and math.isnan(ieee(0.0, 0.0))
    with pytest.raises(ZeroDivisionError):  # what Numba's default (Python) error model does
        numba.njit(_quotient)(1.0, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_vectorized_adam_loop_gives_the_bits_of_the_python_error_model(dtype):
    """Adam's loop divides twice per element; under the Python error model it ran scalar, with a
    zero test per division. Both builds must agree bit for bit (IEEE division, sqrt: correctly
    rounded in scalar and vector form)."""
    rng = np.random.default_rng(0)
    n = 1000 + 7  # a vector body and a remainder
    w, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = rng.random(n).astype(dtype)
    k = np.array([0.5, 0.1, 1e-2, 1e-3, 0.999, 0.9, 0.1, 0.999, 1e-3, 1e-3 / 0.1, math.sqrt(1e-3), 1e-8], dtype)
    python_model = numba.njit(error_model="python")(optim._adam.serial.py_func)
    for decay, do_clip in ((True, True), (False, False)):
        a = [x.copy() for x in (w, g, m, v)]
        b = [x.copy() for x in (w, g, m, v)]
        optim._adam.serial(*a, decay, do_clip, k)
        python_model(*b, decay, do_clip, k)
        for got, want in zip(a, b):
            np.testing.assert_array_equal(got, want)
        assert not np.array_equal(a[0], w)  # the step changed the parameters
