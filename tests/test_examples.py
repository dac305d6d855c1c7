"""The examples run end to end (a smoke test on short runs; the full runs and their accuracies are
recorded in the docs and the example docstrings)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(script, *args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_train_mnist_prints_its_test_accuracy_last(tmp_path):
    out = _run("train_mnist.py", "--epochs", "1", "--verbose", "0", "--plot", str(tmp_path / "curves.png"),
               cwd=tmp_path)
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"test_accuracy: (0\.\d{4})", last)
    assert m, last
    # one epoch of this MLP reaches well over 90% on MNIST, full set or bundled sample
    assert float(m.group(1)) > 0.9
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_dropout_mnist_prints_its_table(tmp_path):
    out = _run("dropout_mnist.py", "--epochs", "1", "--rates", "0", "0.5", "--train-size", "2000",
               "--plot", str(tmp_path / "d.png"), cwd=tmp_path)
    assert "| epoch | p = 0 | p = 0.5 |" in out
    row = re.search(r"^\| 1 \| (0\.\d{4}) \| (0\.\d{4}) \|$", out, re.M)
    assert row, out[-2000:]
    assert all(0.5 < float(v) <= 1 for v in row.groups())  # 2,000 images, one epoch: well above chance
    assert (tmp_path / "d.png").stat().st_size > 0


def test_resnet_mnist_reports_test_accuracy(tmp_path):
    out = _run("resnet_mnist.py", "--epochs", "1", "--train-size", "512", cwd=tmp_path)
    assert re.search(r"test_accuracy: 0\.\d{4}", out), out[-2000:]
