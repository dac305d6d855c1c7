"""Packaging: the wheel carries gpunet, gpunet.kernels with its CUDA sources, and the MNIST sample;
the README's test command is the one CI runs; every .cu file compiles with nvcc."""
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_kernel_sources(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel = next(tmp_path.glob("gpunet-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    cu_sources = sorted(p.relative_to(ROOT / "kernels").as_posix() for pattern in ("*.cu", "*.cuh")
                        for p in (ROOT / "kernels").rglob(pattern))
    assert "gpunet/kernels/__init__.py" in names
    for rel in cu_sources:
        assert f"gpunet/kernels/{rel}" in names, f"{rel} missing from the wheel"
    for py in (ROOT / "kernels").rglob("*.py"):
        assert f"gpunet/kernels/{py.relative_to(ROOT / 'kernels').as_posix()}" in names
    assert "gpunet/backend.py" in names
    sample = ROOT / "gpunet" / "data" / "mnist_sample.npz"
    if sample.exists():
        assert "gpunet/data/mnist_sample.npz" in names
    # no stray top-level 'kernels' package in the wheel
    assert not any(n.startswith("kernels/") for n in names)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README must mark its test command with <!-- test-command -->"
    command = block.group(1).strip()
    assert command in ci, f".ci/run must run the README's test command:\n{command}"


def _cu_files():
    return sorted((ROOT / "kernels").rglob("*.cu"))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_cuda_source_compiles_to_ptx(arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        if os.environ.get("CI"):
            pytest.fail("nvcc not found: CI must compile every .cu file")
        pytest.skip("nvcc not installed")
    files = _cu_files()
    assert files, "no .cu files found under kernels/"
    for cu in files:
        out = tmp_path / (cu.stem + f".{arch}.ptx")
        proc = subprocess.run([nvcc, "--ptx", f"-arch={arch}", "-std=c++17", "-I", str(ROOT / "kernels" / "common"),
                               str(cu), "-o", str(out)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{cu.relative_to(ROOT)} ({arch}):\n{proc.stderr[-3000:]}"
        assert out.stat().st_size > 0
