"""The array layer: switching, device moves, seeds."""
import subprocess
import sys

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend


def test_use_cpu_and_aliases():
    assert gn.use("numpy") == "cpu"
    assert gn.xp is np and backend.xp is np
    assert gn.use("cpu") == "cpu"


def test_use_rejects_unknown_names():
    with pytest.raises(ValueError, match="expected one of"):
        gn.use("tpu")


def test_use_gpu_without_a_gpu_says_so(monkeypatch):
    monkeypatch.setattr(backend, "_gpu_probe", (False, "ImportError: No module named 'cupy'"))
    with pytest.raises(RuntimeError, match=r"use\('gpu'\): no usable GPU.*cupy.*use\('cpu'\)"):
        gn.use("gpu")
    assert gn.use("auto") == "cpu"
    assert backend.active() == "cpu"


def test_gpu_by_index_names_and_errors(monkeypatch):
    for bad in ("gpu:x", "cpu:1", "gpu:-1", "tpu:0", "cuda:"):
        with pytest.raises(ValueError, match=r"'gpu:N' / 'cuda:N'"):
            gn.use(bad)
    monkeypatch.setattr(backend, "_gpu_probe", (False, "ImportError: No module named 'cupy'"))
    for name in ("gpu:1", "cuda:0", "cuda"):
        with pytest.raises(RuntimeError, match="no usable GPU"):
            gn.use(name)
    assert backend.active() == "cpu"


@pytest.mark.gpu
def test_use_gpu_by_index_makes_it_the_current_device():
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
    try:
        assert gn.use(f"cuda:{count - 1}") == "gpu"
        assert cupy.cuda.Device().id == count - 1
        assert gn.to_device(np.ones(2)).device.id == count - 1
        with pytest.raises(ValueError, match=f"has {count} GPU"):
            gn.use(f"gpu:{count}")
    finally:
        cupy.cuda.Device(0).use()
        gn.use("cpu")


def test_env_variable_selects_the_backend():
    code = "import gpunet; print(gpunet.backend.active())"
    out = subprocess.run([sys.executable, "-c", code], env={"GPUNET_BACKEND": "numpy", "PATH": ""},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "cpu"
    bad = subprocess.run([sys.executable, "-c", code], env={"GPUNET_BACKEND": "tpu", "PATH": ""},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "GPUNET_BACKEND" in bad.stderr


def test_to_numpy_to_device_and_array_module():
    a = np.arange(3.0)
    assert gn.to_numpy(a) is a
    b = gn.to_device([1, 2], "cpu", dtype=np.float32)
    assert isinstance(b, np.ndarray) and b.dtype == np.float32
    assert gn.get_array_module(b) is np
    assert backend.device_of(b) == "cpu"
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        gn.to_device(a, "tpu")


def test_seed_makes_rng_reproducible_and_state_round_trips():
    gn.seed(5)
    a = backend.rng().random(3)
    gn.seed(5)
    state = backend.get_rng_state()
    b = backend.rng().random(3)
    backend.set_rng_state(state)
    c = backend.rng().random(3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, c)
    assert backend.get_seed() == 5
    with pytest.raises(ValueError, match="non-negative"):
        gn.seed(-1)


@pytest.mark.gpu
def test_gpu_backend_round_trip():
    import cupy

    assert gn.use("gpu") == "gpu"
    assert gn.xp is cupy
    a = gn.to_device(np.arange(4, dtype=np.float32))
    assert isinstance(a, cupy.ndarray) and gn.get_array_module(a) is cupy
    np.testing.assert_array_equal(gn.to_numpy(a * 2), [0, 2, 4, 6])
    assert gn.use("auto") == "gpu"


@pytest.mark.gpu
def test_same_seed_same_model_on_cpu_and_gpu(rng):
    gn.use("cpu")
    gn.seed(3)
    cpu = gn.Sequential(gn.Linear(6, 5), gn.ReLU(), gn.Linear(5, 2))
    gn.use("gpu")
    gn.seed(3)
    gpu = gn.Sequential(gn.Linear(6, 5), gn.ReLU(), gn.Linear(5, 2))
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y_cpu = cpu(x)
    y_gpu = gn.to_numpy(gpu(gn.to_device(x)))
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-5, atol=1e-6)
