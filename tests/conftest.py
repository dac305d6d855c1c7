"""Test conventions (see DESIGN.md, "Tests").

Markers: ``gpu`` skips without a usable GPU unless GPUNET_REQUIRE_GPU=1, which makes that a
failure; ``oracle`` does the same for a missing PyTorch with GPUNET_REQUIRE_ORACLE=1; ``onnx``
skips without onnx and onnxruntime, except in CI (CI set), where they are installed and a
missing one is a failure;
``cudasim`` tests need NUMBA_ENABLE_CUDASIM=1 set before numba is imported, so they run in a
pytest process of their own, started by tests/test_cudasim_suite.py.
"""
from __future__ import annotations

import importlib
import os
import zlib

import numpy as np
import pytest

import gpunet
from gpunet import backend


def _require(var: str) -> bool:
    return os.environ.get(var, "") not in ("", "0")


def _import_or_skip(modules, required_by: str, what: str) -> None:
    """Skip the test when one of ``modules`` cannot be imported; fail it instead where the
    environment variable ``required_by`` is set."""
    try:
        for name in modules:
            importlib.import_module(name)
    except Exception as exc:
        if _require(required_by):
            pytest.fail(f"{required_by} is set but {what} cannot be imported: {exc}")
        pytest.skip(f"{what} not installed ({exc})")


@pytest.fixture(autouse=True)
def _marker_gates(request):
    node = request.node
    if node.get_closest_marker("cudasim") and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("cudasim test: runs in its own process (tests/test_cudasim_suite.py)")
    if node.get_closest_marker("gpu") and not backend.gpu_available():
        why = backend._probe_gpu()[1]
        if _require("GPUNET_REQUIRE_GPU"):
            pytest.fail(f"GPUNET_REQUIRE_GPU=1 but no usable GPU: {why}")
        pytest.skip(f"no usable GPU ({why})")
    if node.get_closest_marker("onnx"):
        _import_or_skip(("onnx", "onnxruntime"), "CI", "onnx or onnxruntime")
    if node.get_closest_marker("oracle"):
        _import_or_skip(("torch",), "GPUNET_REQUIRE_ORACLE", "PyTorch")
    yield


@pytest.fixture(autouse=True)
def _fresh_state():
    """Every test starts on the CPU backend with seed 0 (GPU tests switch explicitly)."""
    previous = backend.active()
    gpunet.use("cpu")
    gpunet.seed(0)
    yield
    gpunet.use(previous)


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    """Run a test once on the CPU and once on the GPU (the latter marked ``gpu``)."""
    gpunet.use(request.param)
    return request.param


@pytest.fixture
def rng(request):
    """A generator seeded per test from its name, so draws are fresh per test yet reproducible."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
