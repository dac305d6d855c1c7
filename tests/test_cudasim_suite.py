"""Run every ``cudasim`` test (numba_cuda kernels under the CUDA simulator) in a process of its
own: NUMBA_ENABLE_CUDASIM must be set before numba is first imported."""
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_cudasim_suite_passes():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("already inside the simulator process")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", GPUNET_BACKEND="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cudasim", "-p", "no:cacheprovider", "tests"],
        cwd=root, env=env, capture_output=True, text=True, timeout=1800,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    # exit code 5 means no cudasim test was collected: that is a failure too
    assert proc.returncode == 0, f"cudasim suite failed (exit {proc.returncode}):\n{tail}"
    assert " passed" in proc.stdout, tail
