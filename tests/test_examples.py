"""The examples run end to end (a smoke test on short runs; the full runs and their accuracies are
recorded in the docs and the example docstrings)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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
               "--save", str(tmp_path / "model.gnet"), cwd=tmp_path)
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"test_accuracy: (0\.\d{4})", last)
    assert m, last
    # one epoch of this MLP reaches well over 90% on MNIST, full set or bundled sample
    assert float(m.group(1)) > 0.9
    assert (tmp_path / "curves.png").stat().st_size > 0
    # the saved model, reloaded, has the same test accuracy
    import gpunet as gn

    model = gn.load(tmp_path / "model.gnet")
    test = gn.data.mnist("test", fallback_to_sample=True)
    accuracy = gn.Trainer(model, "cross_entropy", None, metrics=["accuracy"]).evaluate(test)["accuracy"]
    assert f"{accuracy:.4f}" == m.group(1)


def test_resnet_mnist_reports_test_accuracy(tmp_path):
    out = _run("resnet_mnist.py", "--epochs", "1", "--train-size", "512", cwd=tmp_path)
    assert re.search(r"test_accuracy: 0\.\d{4}", out), out[-2000:]


PORTS = {  # script: (arguments for a short run, the accuracy it clears on the full set or the sample)
    "pytorch_mnist.py": (["--epochs", "1", "--train-size", "2000", "--log-interval", "100"], 0.7),
    "keras_mnist_convnet.py": (["--epochs", "2", "--train-size", "1000"], 0.5),
    "chainer_train_mnist.py": (["--epoch", "1", "--train-size", "1000"], 0.7),
}


@pytest.mark.parametrize("script", sorted(PORTS))
def test_ports_run_short_and_learn(script, tmp_path):
    args, floor = PORTS[script]
    out = _run(f"ports/{script}", *args, "--json", str(tmp_path / "run.json"), cwd=tmp_path)
    m = re.fullmatch(r"test_accuracy: (0\.\d{4})", out.strip().splitlines()[-1])
    assert m, out[-2000:]
    assert float(m.group(1)) > floor
    import json

    rec = json.loads((tmp_path / "run.json").read_text())
    assert rec["test_accuracy"] == float(m.group(1)) and rec["train_size"] in (1000, 2000)


def test_the_ports_page_shows_the_recorded_full_runs():
    """docs/coming-from-pytorch-keras.md carries the table results_table.py prints from the records."""
    sys.path.insert(0, str(ROOT / "examples" / "ports"))
    try:
        from results_table import RUNS, table
    finally:
        sys.path.pop(0)
    page = (ROOT / "docs" / "coming-from-pytorch-keras.md").read_text()
    block = page.split("<!-- port-runs -->\n")[1].split("<!-- /port-runs -->")[0].strip()
    assert block == table()
    assert {p.stem for p in RUNS.glob("*.json")} == {"pytorch_mnist", "keras_mnist_convnet", "chainer_train_mnist"}


@pytest.mark.oracle
def test_the_torchvision_shim_gives_what_pytorchs_example_reads():
    """benchmarks/originals/torchvision_shim: MNIST as torchvision's datasets.MNIST and transforms give it."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "benchmarks" / "originals" / "torchvision_shim"))
    try:
        from torchvision import datasets, transforms
    finally:
        sys.path.pop(0)
    import gpunet as gn

    t = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST("../data", train=False, transform=t)
    x, y = ds[3]
    ref = gn.data.mnist("test", flatten=False, fallback_to_sample=True)
    assert isinstance(x, torch.Tensor) and tuple(x.shape) == (1, 28, 28) and len(ds) == len(ref.y)
    np.testing.assert_allclose(x.numpy(), (ref.x[3] - 0.1307) / 0.3081, rtol=1e-6, atol=1e-6)
    assert y == int(ref.y[3])
