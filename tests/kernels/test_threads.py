"""kernels/common/threads.py: small inputs run the serial builds of the parallel kernels, large
ones the parallel builds; the mode is restored, also after an error; and both builds of every
op's kernels give the same bits."""
import numba
import numpy as np
import pytest
from numba import prange

from gpunet.kernels.common import threads
from gpunet.kernels.common.philox import keep_threshold
from gpunet.ops.registry import OPS
from gpunet.ops.optim_update import RULES


@threads.parallel_njit(fastmath=False)
def _double(x, y):
    for i in prange(x.size):
        y[i] = 2 * x[i]


@threads.serial_below(100)
def _run(x, fail=False):
    y = np.empty_like(x)
    _double(x, y)
    if fail:
        raise ValueError("inside")
    return threads._mode.serial, y


def test_serial_builds_below_the_threshold_and_restored():
    x = np.arange(99.0)
    serial, y = _run(x)
    assert serial and np.array_equal(y, 2 * x) and _double.serial.signatures
    assert _run(x=x)[0]  # by name, as the tier harness passes it
    with pytest.raises(ValueError, match="inside"):
        _run(np.zeros(5), fail=True)
    assert not threads._mode.serial


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 or more Numba threads")
def test_parallel_builds_from_the_threshold_unless_numba_has_one_thread():
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        serial, y = _run(np.arange(100.0))
        assert not serial and np.array_equal(y, 2 * np.arange(100.0)) and _double.parallel.signatures
        numba.set_num_threads(1)
        assert _run(np.arange(100.0))[0]
    finally:
        numba.set_num_threads(previous)


@threads.host_njit()
def _host(x, y):
    _double(x, y)
    return y.sum()


@threads.host_njit()
def _outer_host(x, y):
    return _host(x, y) + 1.0


def test_a_host_function_runs_as_python_or_compiled_against_the_serial_builds():
    x, y = np.arange(10.0), np.empty(10)
    assert _outer_host(x, y) == 91.0 and _double.parallel.signatures  # parallel mode: Python
    threads._mode.serial = True
    try:
        y[:] = 0.0
        assert _outer_host(x, y) == 91.0 and np.array_equal(y, 2 * x)
    finally:
        threads._mode.serial = False
    outer = _outer_host.serial_build()  # the compiled twin, and what its names resolve to:
    assert outer.signatures and outer.py_func.__globals__["_host"] is _host.serial_build()
    assert _host.serial_build().py_func.__globals__["_double"] is _double.serial
    assert _host.serial_build().signatures


def _both_builds(fn, make_args):
    """The outputs (every array argument after the call) of ``fn`` with the parallel builds and
    with the serial builds, each on fresh copies of ``make_args()``."""
    out = []
    for serial in (False, True):
        args = make_args()
        threads._mode.serial = serial
        try:
            fn.__wrapped__(*args)
        finally:
            threads._mode.serial = False
        out.append([a for a in args if isinstance(a, np.ndarray)])
    return out


def _rng():
    return np.random.default_rng(7)


def _bn_cases():
    k = OPS["batchnorm"].module("numba_cpu")
    for shape in ((300, 24, 1), (6, 5, 49)):
        def fwd(shape=shape):
            C = shape[1]
            r = _rng()
            x = r.standard_normal(shape).astype(np.float32)
            w, b = r.standard_normal(C).astype(np.float32), r.standard_normal(C).astype(np.float32)
            return (x, w, b, np.zeros(C, np.float32), np.ones(C, np.float32), np.empty_like(x), np.empty(C),
                    np.empty(C), 1e-5, 0.1, True, True)

        def bwd(shape=shape):
            C = shape[1]
            r = _rng()
            x, dy = (r.standard_normal(shape).astype(np.float32) for _ in range(2))
            mean, invstd = x.mean(axis=(0, 2)).astype(np.float64), np.full(C, 1.3)
            return (dy, x, np.ones(C, np.float32), mean, invstd, np.empty_like(x), np.empty(C, np.float32),
                    np.empty(C, np.float32), True, np.maximum(x, 0))

        yield f"batchnorm.forward_train{shape}", k.forward_train, fwd
        yield f"batchnorm.backward{shape}", k.backward, bwd


def _other_cases():
    d = OPS["dropout"].module("numba_cpu")
    n = 3 * 4096 + 13

    def drop_fwd():
        x = _rng().standard_normal(n).astype(np.float32)
        return x, np.empty_like(x), np.empty((n + 7) // 8, np.uint8), 5, 2, 9, keep_threshold(0.3), 1 / 0.7, 3

    def drop_bwd():
        r = _rng()
        return (r.standard_normal(n).astype(np.float32), r.integers(0, 256, (n + 7) // 8).astype(np.uint8),
                np.empty(n, np.float32), 1 / 0.7)

    yield "dropout.forward", d.forward, drop_fwd
    yield "dropout.backward", d.backward, drop_bwd
    ln = OPS["layernorm"].module("numba_cpu")

    def ln_fwd():
        x = _rng().standard_normal((70, 33)).astype(np.float32)
        return x, np.ones(33, np.float32), np.zeros(33, np.float32), np.empty_like(x), np.empty(70), np.empty(70), 1e-5

    def ln_bwd():
        r = _rng()
        x, dy = (r.standard_normal((70, 33)).astype(np.float32) for _ in range(2))
        return (dy, x, np.ones(33, np.float32), x.mean(axis=1).astype(np.float64), np.full(70, 0.9),
                np.empty_like(x), np.empty(33, np.float32), np.empty(33, np.float32))

    yield "layernorm.forward", ln.forward, ln_fwd
    yield "layernorm.backward", ln.backward, ln_bwd
    g = OPS["global_norm"].module("numba_cpu")
    m = (1 << 16) + 3
    yield "global_norm.grad_stats", g.grad_stats, lambda: (_rng().standard_normal(m).astype(np.float32),
                                                          np.zeros(4), True)
    yield "global_norm.scale_by_norm", g.scale_by_norm, lambda: (_rng().standard_normal(m).astype(np.float32),
                                                                np.array([9.0, 0, 0, 0]), 1.0)
    e = OPS["ema"].module("numba_cpu")
    yield "ema.ema_update", e.ema_update, lambda: (np.zeros(m, np.float32),
                                                   _rng().standard_normal(m).astype(np.float32), 0.99)
    o = OPS["optim_update"].module("numba_cpu")
    hyper = {"sgd": {}, "momentum": {"mu": 0.9, "nesterov": False}, "adagrad": {"lr_decay": 0.01, "eps": 1e-10},
             "rmsprop": {"alpha": 0.99, "eps": 1e-8, "mu": 0.9, "centered": True},
             "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}
    for rule, n_states in RULES.items():
        def opt_args(n_states=n_states):
            r = _rng()
            return (r.standard_normal(m).astype(np.float32), r.standard_normal(m).astype(np.float32),
                    *(np.abs(r.standard_normal(m)).astype(np.float32) for _ in range(n_states)),
                    np.array([2.0, 0.0, 3.0, 0.0]))

        def step(*args, rule=rule):
            getattr(o, rule).__wrapped__(*args, n_decay=m // 2, lr=0.01, weight_decay=0.1, l1=0.0, decoupled_wd=0.0,
                                         clip_norm=1.0, clip_value=0.0, norm_eps=0.0, guard=True, **hyper[rule])

        step.__wrapped__ = step
        yield f"optim_update.{rule}", step, opt_args


CASES = list(_bn_cases()) + list(_other_cases())


@pytest.mark.parametrize("name, fn, make_args", CASES, ids=[c[0] for c in CASES])
def test_serial_and_parallel_builds_give_the_same_bits(name, fn, make_args):
    parallel, serial = _both_builds(fn, make_args)
    for a, b in zip(parallel, serial):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
