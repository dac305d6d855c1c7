"""Misuse that used to go unnoticed, or failed with a message that named gpunet's insides: each
now fails at once, naming the argument or layer and what was expected."""
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gpunet as gn
from gpunet.train import EarlyStopping, Trainer


def sgd(model):
    return gn.optim.SGD(model, lr=0.1)


# ---------------------------------------------------------------------- Trainer's arguments
def test_an_optimizer_built_for_another_model_is_refused(mlp):
    model, other = mlp(), mlp()
    with pytest.raises(ValueError, match=r"Trainer\(optimizer\): this Adam updates another model's parameters"):
        Trainer(model, gn.losses.CrossEntropy(), gn.optim.Adam(other))
    stale = gn.optim.SGD(model, lr=0.1)
    model.to("cpu", dtype="float64")  # moving gives the model new buffers
    with pytest.raises(ValueError, match="after any model.to"):
        Trainer(model, gn.losses.CrossEntropy(), stale)


@pytest.mark.parametrize("arg, value, message", [
    ("loss", gn.losses.CrossEntropy, r"Trainer\(loss\): .* got the class CrossEntropy \(pass CrossEntropy\(\)\)"),
    ("loss", ["mse"], r"Trainer\(loss\): .* or a loss name, got a list"),
    ("loss", 3.0, r"Trainer\(loss\): .* got a float"),
    ("optimizer", 1e-3, r"Trainer\(optimizer\): .* or an optimizer name, got a float"),
    ("optimizer", gn.optim.Adam, r"Trainer\(optimizer\): .* got the class Adam"),
    ("callbacks", [EarlyStopping], r"Trainer\(callbacks\): item 0 is the class EarlyStopping"),
    ("callbacks", ["early_stopping"], r"Trainer\(callbacks\): item 0 is the string 'early_stopping'"),
    ("model", "mlp", r"Trainer\(model\): expected a gpunet model"),
])
def test_arguments_of_the_wrong_kind_fail_at_construction(mlp, arg, value, message):
    model = mlp()
    kwargs = {"model": model, "loss": gn.losses.CrossEntropy(), "optimizer": sgd(model), "callbacks": []}
    kwargs[arg] = value
    with pytest.raises(TypeError, match=message):
        Trainer(**kwargs)


def test_fit_without_an_optimizer_says_so(mlp, data):
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), None)
    assert set(t.evaluate(data[1])) == {"loss", "accuracy"}  # evaluate-only Trainers stay possible
    with pytest.raises(TypeError, match="no optimizer"):
        t.fit(data[0])


@pytest.mark.parametrize("verbose", [5, -1, 1.5, "1"])
def test_verbose_accepts_0_1_2_only(mlp, data, verbose):
    model = mlp()
    with pytest.raises(ValueError, match=r"Trainer.fit\(verbose\): expected 0 .*, 1 .* or 2"):
        Trainer(model, gn.losses.CrossEntropy(), sgd(model)).fit(data[0], verbose=verbose)


@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_batch_size_errors_name_the_public_call(mlp, data, call):
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), sgd(model))
    arg = data[0] if call != "predict" else data[0][0]
    with pytest.raises(ValueError, match=rf"Trainer.{call}\(batch_size\): expected a positive integer, got 0") as info:
        getattr(t, call)(arg, batch_size=0)
    assert "num_batches" not in str(info.value)
    if call == "fit":
        with pytest.raises(ValueError, match=r"Trainer.fit\(val_batch_size\)"):
            t.fit(arg, val=data[1], val_batch_size=-3)


# ---------------------------------------------------------------------- labels
def test_out_of_range_labels_never_wrap_silently(rng, device):
    logits = gn.to_device(rng.normal(size=(4, 3)).astype(np.float32))
    y = np.array([0, 2, -1, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        gn.losses.CrossEntropy()(logits, gn.to_device(y))
    loss = gn.losses.CrossEntropy(check_labels=False)
    assert np.isnan(float(loss(logits, gn.to_device(y))))  # not the loss of class 2 for the label -1
    g = gn.to_numpy(loss.backward())
    assert g.dtype == np.float32 and np.isnan(g[2]).all() and np.isfinite(np.delete(g, 2, axis=0)).all()
    y[2] = 3
    assert np.isnan(float(loss(logits, gn.to_device(y))))
    good = gn.to_device(np.array([0, 2, 1, 1]))  # valid labels: the same value either way
    assert float(loss(logits, good)) == float(gn.losses.CrossEntropy()(logits, good))


def test_the_trainer_checks_labels_once_and_the_examples_need_no_switch(mlp, data):
    (x, y), _ = data
    bad = y.copy()
    bad[7] = -1
    model = mlp()
    with pytest.raises(ValueError, match=r"Trainer.fit\(train\): labels must lie in \[0, 3\)"):
        Trainer(model, gn.losses.CrossEntropy(), sgd(model)).fit((x, bad), verbose=0)
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    for script in sorted((root / "examples").glob("*.py")):
        assert "check_labels" not in script.read_text(), script.name


# ---------------------------------------------------------------------- values and keys
def test_an_initializer_returning_nan_or_inf_is_refused():
    with pytest.raises(ValueError, match=r"initializer .* returned 12 non-finite values .* shape \(3, 4\)"):
        gn.Linear(4, 3, init=lambda shape, fi, fo, rng: np.full(shape, np.nan))
    with pytest.raises(ValueError, match="non-finite values .*float32"):
        gn.Linear(4, 3, init=lambda shape, fi, fo, rng: np.full(shape, 1e39))  # inf once cast


def test_load_state_dict_returns_the_keys_it_skipped_and_refuses_a_list(mlp):
    model = mlp()
    state = model.state_dict()
    state.pop("0.bias")
    state["extra.weight"] = np.zeros(3, np.float32)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra.weight"]
    assert model.load_state_dict(model.state_dict()) == ([], [])
    with pytest.raises(TypeError, match=r"load_state_dict: expected a mapping of name -> array .* got list"):
        model.load_state_dict(list(model.state_dict().items()))


@pytest.mark.parametrize("value, error", [(1.7, TypeError), ("3", TypeError), (True, TypeError), (-2, ValueError)])
def test_seed_refuses_what_is_not_a_non_negative_integer(value, error):
    with pytest.raises(error, match=re.escape(f"seed(n): expected a non-negative integer, got {value!r}")):
        gn.seed(value)
    gn.seed(np.int64(3))
    assert gn.backend.get_seed() == 3


# ---------------------------------------------------------------------- clear errors
@pytest.mark.parametrize("loss", [gn.losses.CrossEntropy(), gn.losses.MSE()])
def test_loss_backward_before_a_forward(loss):
    with pytest.raises(RuntimeError, match=rf"{type(loss).__name__}.backward\(\) called before a forward pass"):
        loss.backward()


@pytest.mark.parametrize("layer, x_shape", [
    (gn.Linear(4, 3), (5, 4)), (gn.ReLU(), (5, 4)), (gn.LeakyReLU(), (5, 4)), (gn.Tanh(), (5, 4)),
    (gn.Sigmoid(), (5, 4)), (gn.Softmax(), (5, 4)), (gn.Flatten(), (5, 2, 2)),
])
def test_a_dy_of_the_wrong_shape_names_the_layer(rng, layer, x_shape):
    with pytest.raises(RuntimeError, match=f"{layer.name}: backward called before forward"):
        layer.backward(np.ones(x_shape, np.float32))
    y = layer(rng.normal(size=x_shape).astype(np.float32))
    wrong = np.ones((y.shape[0], y.shape[1] + 1), np.float32)
    with pytest.raises(ValueError, match=re.escape(f"{layer.name}.backward: dy has shape {wrong.shape}, "
                                                   f"expected {y.shape} (the shape of the forward's output)")):
        layer.backward(wrong)
    assert layer.backward(np.ones_like(y)) is not None


def test_a_wrong_dy_through_a_model_names_the_layer(mlp, rng):
    model = mlp()
    model(rng.normal(size=(5, 8)).astype(np.float32))
    with pytest.raises(ValueError, match=r"Linear \(layer 2\).backward: dy has shape \(5, 4\), expected \(5, 3\)"):
        model.backward(np.ones((5, 4), np.float32))


def test_predict_on_an_empty_array(mlp):
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), sgd(model))
    with pytest.raises(ValueError, match=r"Trainer.predict\(x\): expected an array of shape \(N, ...\) with N > 0, "
                                         r"got shape \(0, 8\)"):
        t.predict(np.zeros((0, 8), np.float32))


@pytest.mark.oracle
def test_a_torch_tensor_gets_a_conversion_hint(mlp, data):
    import torch

    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), sgd(model))
    xt = torch.zeros(4, 8)
    with pytest.raises(TypeError, match=r"Linear \(layer 0\): expected a NumPy or CuPy array, got a torch.Tensor: convert it with t.numpy\(\)"):
        model(xt)
    with pytest.raises(TypeError, match=r"Trainer.predict\(x\): .* torch.Tensor"):
        t.predict(xt)
    (x, y) = data[0]
    with pytest.raises(TypeError, match=r"Trainer.fit\(train\): y must be a NumPy or CuPy array, got a torch.Tensor"):
        t.fit((x, torch.from_numpy(y)), verbose=0)


# ---------------------------------------------------------------------- batch norm and a batch of one
def test_a_last_batch_of_one_sample_with_batch_norm_fails_before_the_epoch(rng):
    model = gn.Sequential(gn.Linear(8, 16), gn.BatchNorm1d(16), gn.ReLU(), gn.Linear(16, 3))
    x = rng.normal(size=(65, 8)).astype(np.float32)
    y = rng.integers(0, 3, 65)
    steps = []
    t = Trainer(model, gn.losses.CrossEntropy(), sgd(model))
    t.optimizer.step = lambda real=t.optimizer.step: steps.append(1) or real()
    with pytest.raises(ValueError, match=r"65 samples in batches of 32 leave a last batch of 1 sample, and layer "
                                         r"'1' \(BatchNorm1d\) cannot .* drop_last=True"):
        t.fit((x, y), epochs=1, batch_size=32, verbose=0)
    assert steps == []  # no work was done first
    with pytest.raises(ValueError, match="batch_size=1, and layer '1'"):
        t.fit((x, y), epochs=1, batch_size=1, verbose=0)
    t.fit((x, y), epochs=1, batch_size=32, verbose=0, drop_last=True)
    t.fit((x, y), epochs=1, batch_size=20, verbose=0)  # a last batch of 5
    assert len(steps) == 2 + 4


def test_batch_norm2d_takes_a_batch_of_one_image(rng):
    """(1, C, H, W) holds H·W values per channel: PyTorch trains on it, and so does gpunet."""
    model = gn.Sequential(gn.Conv2d(1, 4, 3), gn.BatchNorm2d(4), gn.ReLU(), gn.Flatten(), gn.Linear(4 * 36, 3))
    x = rng.normal(size=(9, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 9)
    h = Trainer(model, gn.losses.CrossEntropy(), sgd(model)).fit((x, y), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(h["loss"][0])


def test_metrics_errors_name_the_argument_and_one_name_is_a_list_of_one(mlp):
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), sgd(model), metrics="accuracy")
    assert [m.name for m in t.metrics] == ["accuracy"]
    with pytest.raises(ValueError, match=r"Trainer\(metrics\): unknown metric 'acuracy'"):
        Trainer(model, gn.losses.CrossEntropy(), sgd(model), metrics=["acuracy"])
