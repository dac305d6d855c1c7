"""ONNX export (gpunet.onnx.export), checked by running the exported graphs in ONNX Runtime's CPU
provider against the model's own predictions."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.onnx import ExportError

pytestmark = pytest.mark.onnx
ROOT = Path(__file__).resolve().parent.parent


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _mnist(n=256):
    test = gn.data.mnist("test", fallback_to_sample=True)[:n]
    return gn.to_numpy(test.x).astype(np.float32), gn.to_numpy(test.y)


def _main_job_mlp():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from train_mnist import build_model
    finally:
        sys.path.pop(0)
    return build_model(0.2)


MODELS = {
    "main_job_mlp": (_main_job_mlp, (784,)),
    "dropout_cnn": (gn.models.dropout_cnn, (1, 28, 28)),
    "resnet_small": (gn.models.resnet_small, (1, 28, 28)),
    "inception_small": (gn.models.inception_small, (1, 28, 28)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_models_predict_as_gpunet_on_mnist(name, tmp_path):
    build, shape = MODELS[name]
    gn.seed(0)
    model = build()
    x, y = _mnist()
    x = x.reshape(len(x), *shape)
    trainer = gn.Trainer(model, "cross_entropy", gn.optim.Adam(model, lr=1e-3), metrics=[])
    for i in range(4):  # trained weights and batch-norm statistics, not the initial ones
        trainer.train_step(x[64 * i: 64 * i + 64], y[64 * i: 64 * i + 64])
    path = tmp_path / f"{name}.onnx"
    proto = gn.onnx.export(model, path, shape)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    ours = gn.to_numpy(trainer.predict(x))
    theirs = _session(path).run(None, {"input": x})[0]
    assert theirs.shape == ours.shape
    assert np.max(np.abs(theirs - ours)) < 1e-4
    np.testing.assert_array_equal(theirs.argmax(axis=1), ours.argmax(axis=1))
    assert model.training  # export left the model's mode as it was
    for n in (1, 7):  # the batch dimension is dynamic
        np.testing.assert_allclose(_session(path).run(None, {"input": x[:n]})[0], ours[:n], atol=1e-4)


def test_every_converter_against_gpunet(tmp_path):
    gn.seed(1)
    model = gn.Sequential(
        gn.Conv2d(1, 8, 3, padding=1, activation="tanh"), gn.GroupNorm(2, 8), gn.LeakyReLU(0.1),
        gn.AvgPool2d(3, stride=2, padding=1), gn.WeightNorm(gn.Conv2d(8, 6, 3, stride=2)),
        gn.Concat([gn.Sequential(gn.MaxPool2d(2), gn.Sigmoid()), gn.Sequential(gn.AvgPool2d(2), gn.Identity())]),
        gn.Dropout2d(0.5), gn.Flatten(), gn.WeightNorm(gn.Linear(12, 16, bias=False)), gn.LayerNorm(16),
        gn.Residual(gn.Sequential(gn.Linear(16, 16, activation="relu"), gn.Dropout(0.3))),
        gn.BatchNorm1d(16, affine=False), gn.Linear(16, 5), gn.Softmax(),
    )
    x = np.random.default_rng(2).normal(size=(9, 1, 14, 14)).astype(np.float32)
    model.train()
    model(x)  # moves the batch norm's running statistics off 0 and 1
    model.eval()
    gn.onnx.export(model, tmp_path / "all.onnx", (1, 14, 14))
    np.testing.assert_allclose(_session(tmp_path / "all.onnx").run(None, {"input": x})[0], gn.to_numpy(model(x)),
                               atol=1e-5)


def test_flatten_from_a_later_axis_and_layer_norm_over_two_axes(tmp_path):
    model = gn.Sequential(gn.Flatten(start_dim=2), gn.LayerNorm((3, 16), elementwise_affine=False))
    x = np.random.default_rng(3).normal(size=(4, 3, 4, 4)).astype(np.float32)
    gn.onnx.export(model, tmp_path / "f.onnx", (3, 4, 4))
    np.testing.assert_allclose(_session(tmp_path / "f.onnx").run(None, {"input": x})[0], gn.to_numpy(model(x)),
                               atol=1e-5)


class Scale(gn.Layer):
    def forward(self, x):
        return 2 * x


class MyLinear(gn.Linear):
    pass


def test_a_layer_that_cannot_be_exported_names_itself_and_leaves_the_file(tmp_path):
    path = tmp_path / "m.onnx"
    gn.onnx.export(gn.Sequential(gn.Linear(4, 2)), path, (4,))
    before = path.read_bytes()
    cases = [
        (gn.Sequential(gn.Linear(4, 4), gn.Sequential(gn.ReLU(), Scale())), r"^1\.1 \(Scale\) cannot be exported"),
        (gn.Sequential(MyLinear(4, 2)), r"^0 \(MyLinear\) cannot be exported"),
        (gn.Sequential(gn.Linear(4, 4), gn.BatchNorm1d(4, track_running_stats=False)), r"^1 .*no running statistics"),
    ]
    for model, message in cases:
        with pytest.raises(ExportError, match=message):
            gn.onnx.export(model, path, (4,))
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="input_shape"):
        gn.onnx.export(gn.Sequential(gn.Linear(4, 2)), path, (0, 4))
    with pytest.raises(ValueError, match="opset"):
        gn.onnx.export(gn.Sequential(gn.Linear(4, 2)), path, (4,), opset=13)
    with pytest.raises(TypeError, match="expected a gpunet layer"):
        gn.onnx.export("model", path, (4,))


def test_the_main_jobs_saved_model_exports_with_its_test_accuracy(tmp_path):
    """examples/train_mnist.py --save writes a model that gn.load reloads and that ONNX Runtime
    runs to the same test accuracy as the script printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mnist.py"), "--epochs", "1", "--verbose",
                           "0", "--plot", "", "--save", str(tmp_path / "model.gnet")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = float(re.fullmatch(r"test_accuracy: (0\.\d{4})", proc.stdout.strip().splitlines()[-1]).group(1))
    model = gn.load(tmp_path / "model.gnet")
    gn.onnx.export(model, tmp_path / "model.onnx", (784,))
    test = gn.data.mnist("test", fallback_to_sample=True)
    logits = _session(tmp_path / "model.onnx").run(None, {"input": gn.to_numpy(test.x).astype(np.float32)})[0]
    accuracy = float((logits.argmax(axis=1) == gn.to_numpy(test.y)).mean())
    assert f"{accuracy:.4f}" == f"{printed:.4f}"
