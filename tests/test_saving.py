"""Whole-model files (gpunet.save / gpunet.load): exact round trips, custom layers, and clear
errors for files that are not model files, are cut, altered or newer."""
from __future__ import annotations

import json

import numpy as np
import pytest

import gpunet as gn
from gpunet.layers import config as layer_config
from gpunet.saving import ModelFileError


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _trained(model, x, steps=3):
    """A few Adam steps, so that weights and running statistics differ from a fresh build."""
    y = np.arange(len(x)) % 10
    trainer = gn.Trainer(model, "cross_entropy", gn.optim.Adam(model, lr=1e-2), metrics=[])
    for _ in range(steps):
        trainer.train_step(x, y)
    return model


def _state(model):
    return {k: gn.to_numpy(v) for k, v in model.state_dict().items()}


MODELS = {
    "mlp": (lambda: gn.Sequential(gn.Linear(784, 64), gn.BatchNorm1d(64), gn.ReLU(), gn.Dropout(0.2),
                                  gn.Linear(64, 10)), (8, 784)),
    "dropout_cnn": (gn.models.dropout_cnn, (4, 1, 28, 28)),
    "resnet_small": (gn.models.resnet_small, (4, 1, 28, 28)),
    "inception_small": (gn.models.inception_small, (4, 1, 28, 28)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_is_exact(name, tmp_path):
    build, shape = MODELS[name]
    gn.seed(3)
    model = build()
    x = _x(shape)
    _trained(model, x)
    model.eval()
    path = tmp_path / "model.gnet"
    gn.save(model, path)
    back = gn.load(path)
    assert type(back) is type(model) and not back.training
    assert layer_config.to_config(back) == layer_config.to_config(model)
    saved, loaded = _state(model), _state(back)
    assert list(saved) == list(loaded)
    for k in saved:
        assert saved[k].dtype == loaded[k].dtype and saved[k].shape == loaded[k].shape, k
        np.testing.assert_array_equal(saved[k], loaded[k], err_msg=k)  # bit for bit
    np.testing.assert_array_equal(gn.to_numpy(back(x)), gn.to_numpy(model(x)))


def test_inferred_sizes_and_the_training_mode_come_back(tmp_path):
    model = gn.Sequential(gn.Linear(None, 16), gn.ReLU(), gn.Linear(None, 3))
    model(_x((2, 7)))  # the sizes are inferred from this input
    gn.save(model, tmp_path / "m.gnet")
    back = gn.load(tmp_path / "m.gnet")
    assert back.training and back[0].in_features == 7
    np.testing.assert_array_equal(gn.to_numpy(back(_x((5, 7), 1))), gn.to_numpy(model(_x((5, 7), 1))))


def test_an_unbuilt_model_is_refused_and_the_previous_file_stays(tmp_path):
    path = tmp_path / "m.gnet"
    gn.save(gn.Sequential(gn.Linear(4, 2)), path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="infer their sizes"):
        gn.save(gn.Sequential(gn.Linear(None, 2)), path)
    with pytest.raises(TypeError, match=r"Linear\(init\)"):  # a callable initializer has no name to save
        gn.save(gn.Sequential(gn.Linear(4, 2, init=lambda shape, fan_in, fan_out, rng: np.zeros(shape))), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gnet"]


class Scale(gn.Layer):
    """y = s·x, a custom layer with a constructor argument and no parameters."""

    def __init__(self, s: float = 2.0):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


def test_a_custom_layer_must_be_registered(tmp_path):
    model = gn.Sequential(gn.Linear(3, 3), Scale(0.5))
    with pytest.raises(TypeError, match="Scale is not a registered layer.*register"):
        gn.save(model, tmp_path / "m.gnet")
    gn.layers.register(Scale)
    gn.save(model, tmp_path / "m.gnet")
    back = gn.load(tmp_path / "m.gnet")
    assert isinstance(back[1], Scale) and back[1].s == 0.5
    x = _x((2, 3))
    np.testing.assert_array_equal(gn.to_numpy(back(x)), gn.to_numpy(model(x)))
    with pytest.raises(ValueError, match="name 'Scale' is taken"):
        gn.layers.register(type("Scale", (gn.Layer,), {"forward": lambda self, x: x, "__module__": "elsewhere"}))


def test_a_config_naming_an_unknown_layer_or_argument_fails_clearly():
    with pytest.raises(ValueError, match="'NoSuchLayer', which is not registered"):
        layer_config.from_config({"class": "NoSuchLayer", "args": {}})
    with pytest.raises(ValueError, match="Linear takes no argument 'widht'"):
        layer_config.from_config({"class": "Linear", "args": {"in_features": 2, "out_features": 3, "widht": 1}})


def test_a_synchronized_batch_norm_is_saved_as_a_plain_one(tmp_path):
    comm = gn.distributed.init()  # one process here: a size-1 communicator
    model = gn.Sequential(gn.Linear(4, 4), gn.BatchNorm1d(4, sync=comm))
    gn.save(model, tmp_path / "m.gnet")
    assert gn.load(tmp_path / "m.gnet")[1].sync is None


def _saved(tmp_path):
    path = tmp_path / "m.gnet"
    gn.save(gn.Sequential(gn.Linear(6, 5), gn.BatchNorm1d(5)), path)
    return path, path.read_bytes()


def test_a_cut_file_is_called_truncated(tmp_path):
    path, blob = _saved(tmp_path)
    header = 8 + int.from_bytes(blob[:8], "little")
    for cut in (0, 5, 9, header - 1, header + 3, len(blob) - 1):
        path.write_bytes(blob[:cut])
        with pytest.raises(ModelFileError, match="truncated|too short"):
            gn.load(path)


def test_a_changed_byte_is_called_altered(tmp_path):
    path, blob = _saved(tmp_path)
    for at in (len(blob) - 1, len(blob) - 40):  # in the weights
        changed = bytearray(blob)
        changed[at] ^= 0x10
        path.write_bytes(bytes(changed))
        with pytest.raises(ModelFileError, match="altered"):
            gn.load(path)


def _rewrite_metadata(path, blob, **changes):
    from safetensors.numpy import load, save

    n = int.from_bytes(blob[:8], "little")
    meta = json.loads(blob[8:8 + n])["__metadata__"]
    meta.update(changes)
    path.write_bytes(save(load(blob), metadata={k: v for k, v in meta.items() if v is not None}))


def test_a_file_from_a_newer_format_is_refused_by_version(tmp_path):
    path, blob = _saved(tmp_path)
    _rewrite_metadata(path, blob, format_version="2")
    with pytest.raises(ModelFileError, match="newer gpunet.*format version 2.*reads format version 1"):
        gn.load(path)


def test_files_that_are_not_model_files(tmp_path):
    from safetensors.numpy import save_file

    plain = tmp_path / "weights.safetensors"
    save_file({"0.weight": np.zeros((2, 2), np.float32)}, str(plain))
    with pytest.raises(ModelFileError, match="without gpunet's architecture"):
        gn.load(plain)
    text = tmp_path / "notes.gnet"
    text.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00this is not json")
    with pytest.raises(ModelFileError, match="not a model file"):
        gn.load(text)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gn.load(tmp_path / "missing.gnet")
    with pytest.raises(TypeError, match="gpunet.save"):
        gn.save({"not": "a model"}, tmp_path / "x.gnet")


def test_the_weights_read_without_gpunet(tmp_path):
    """The tensors are the state dict under PyTorch-style names, for any safetensors reader."""
    from safetensors.numpy import load_file

    model = gn.Sequential(gn.Linear(6, 5), gn.BatchNorm1d(5))
    gn.save(model, tmp_path / "m.gnet")
    plain = load_file(str(tmp_path / "m.gnet"))
    assert sorted(plain) == sorted(model.state_dict())
    np.testing.assert_array_equal(plain["0.weight"], gn.to_numpy(model[0].weight))


@pytest.mark.gpu
def test_a_model_moves_between_devices_through_a_file(tmp_path):
    gn.use("gpu")
    model = gn.models.dropout_cnn()
    model.eval()
    x = _x((3, 1, 28, 28))
    y_gpu = gn.to_numpy(model(x))
    gn.save(model, tmp_path / "m.gnet")
    gn.use("cpu")
    back = gn.load(tmp_path / "m.gnet")
    assert back.device == "cpu"
    np.testing.assert_allclose(gn.to_numpy(back(x)), y_gpu, rtol=1e-4, atol=1e-5)
    for k, v in back.state_dict().items():
        np.testing.assert_array_equal(gn.to_numpy(v), gn.to_numpy(model.state_dict()[k]), err_msg=k)
    gn.save(back, tmp_path / "cpu.gnet")
    gn.use("gpu")
    again = gn.load(tmp_path / "cpu.gnet")
    assert again.device.startswith("gpu")
    for k, v in again.state_dict().items():
        np.testing.assert_array_equal(gn.to_numpy(v), gn.to_numpy(back.state_dict()[k]), err_msg=k)
