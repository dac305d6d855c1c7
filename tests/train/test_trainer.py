"""Trainer: fit/evaluate/predict, the exact training step, modes, shuffling, read-backs, bad input."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.layers.base import Layer
from gpunet.train import Callback, Trainer


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def ce_numpy(logits, y):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def test_fit_learns_and_history_has_the_keys(data, mlp):
    train, val = data
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1))
    h = t.fit(train, val=val, epochs=8, batch_size=32, verbose=0)
    assert list(h) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert all(0 < t < 60 for t in h["time"])  # each epoch's wall time, in seconds
    assert h.epochs == list(range(1, 9)) and h.num_epochs == 8 and all(len(v) == 8 for v in h.values())
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] > 0.9
    assert h["lr"] == [0.1] * 8
    ev = t.evaluate(val)
    assert set(ev) == {"loss", "accuracy"}
    assert ev["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-12)
    out = t.predict(val[0])
    assert out.shape == (60, 3) and isinstance(out, np.ndarray)
    assert ev["loss"] == pytest.approx(ce_numpy(out, val[1]), rel=1e-5)
    assert ev["accuracy"] == pytest.approx(np.mean(out.argmax(1) == val[1]))


def test_epoch_loss_is_the_mean_over_all_examples(data, mlp):
    """With lr = 0 the weights stay put, so the epoch's loss (accumulated on the device over
    batches of 32, 32, ..., 20) must equal the loss over the whole set at once."""
    (x, y), _ = data
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.0))
    h = t.fit((x, y), epochs=1, batch_size=32, verbose=0)
    model.eval()
    logits = model(x)
    assert h["loss"][0] == pytest.approx(ce_numpy(logits, y), rel=1e-6)
    assert h["accuracy"][0] == pytest.approx(np.mean(logits.argmax(1) == y))


def test_the_step_is_the_hand_written_loop(data, mlp):
    """Same seed, same model: the Trainer's weights equal a hand-written loop's, bit for bit."""
    (x, y), _ = data
    gn.seed(5)
    m1 = mlp()
    gn.seed(5)
    m2 = mlp()
    gn.seed(11)
    Trainer(m1, gn.losses.CrossEntropy(), gn.optim.SGD(m1, lr=0.05)).fit((x, y), epochs=3, batch_size=16, verbose=0)
    gn.seed(11)
    loss_fn, opt = gn.losses.CrossEntropy(), gn.optim.SGD(m2, lr=0.05)
    for _ in range(3):
        for xb, yb in gn.data.batches(x, y, 16, shuffle=True):
            m2.train()
            logits = m2(xb)
            loss_fn(logits, yb)
            m2.backward(loss_fn.backward())
            opt.step()
    for k, v in m1.state_dict().items():
        np.testing.assert_array_equal(v, m2.state_dict()[k], err_msg=k)


def test_shuffling_follows_the_seed(data, mlp):
    (x, y), _ = data

    def run(seed, shuffle=True):
        gn.seed(0)
        m = mlp()
        gn.seed(seed)
        Trainer(m, gn.losses.CrossEntropy(), gn.optim.SGD(m, lr=0.1)).fit(
            (x, y), epochs=2, batch_size=32, shuffle=shuffle, verbose=0)
        return m[0].weight.copy()

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))
    np.testing.assert_array_equal(run(3, shuffle=False), run(4, shuffle=False))


class ModeProbe(Layer):
    """Identity that records the training flag of every forward."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x

    def backward(self, dy):
        return dy


def test_train_and_eval_modes_around_validation(data, mlp):
    train, val = data
    probe = ModeProbe()
    model = mlp(extra=(probe,))
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1))
    probe.modes.clear()
    t.fit(train, val=val, epochs=2, batch_size=60, verbose=0)
    # the dry forward of the data check is skipped (data validated before) only on re-use; here:
    # per epoch 3 training batches (True) then 1 validation batch (False)
    assert probe.modes[-8:] == [True, True, True, False] * 2
    assert model.training and probe.training
    model.eval()
    t.evaluate(val)
    assert not model.training  # evaluate restores the mode it found
    assert probe.modes[-1] is False


def test_reads_back_every_sync_every_batches_only(data, mlp, monkeypatch):
    (x, y), _ = data
    model = mlp()
    calls = []
    from gpunet.train.tally import Tally

    orig = Tally.read

    def counting(self, *a):
        calls.append(1)
        return orig(self, *a)

    monkeypatch.setattr(Tally, "read", counting)
    seen = []

    class Reader(Callback):
        def on_readback(self, step, logs):
            seen.append((step, round(logs["loss"], 6)))

    # 180 examples / 30 = 6 batches; sync_every=2 -> read-backs after batches 2, 4 and 6 (the epoch end)
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[Reader()], sync_every=2)
    t.fit((x, y), epochs=1, batch_size=30, verbose=0)
    assert len(calls) == 3 and [s for s, _ in seen] == [2, 4, 6]
    calls.clear(), seen.clear()
    t.fit((x, y), epochs=1, batch_size=40, verbose=0)  # 5 batches: after 2, 4 and at the end
    assert len(calls) == 3 and [s for s, _ in seen] == [2, 4, 5]
    calls.clear()
    t2 = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), sync_every=2)
    t2.fit((x, y), epochs=2, batch_size=30, verbose=0)
    assert len(calls) == 2  # nothing asks in between: one read-back per epoch


def test_verbose_levels(data, mlp, capsys, monkeypatch):
    train, val = data
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1))
    t.fit(train, val=val, epochs=1, batch_size=32, verbose=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    monkeypatch.setattr("gpunet.train.trainer._is_terminal", lambda stream: True)
    t.fit(train, val=val, epochs=2, batch_size=32, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "val_loss" in err and "6/6" in err
    t.fit(train, val=val, epochs=1, batch_size=32, verbose=2)
    assert re.search(r"^epoch 1/1  \d+\.\ds  loss=", capsys.readouterr().err)


def test_progress_into_a_file_is_one_line_per_epoch(tmp_path):
    """Redirected (stderr not a terminal), verbose=1 prints one readable line per epoch instead of
    a bar's carriage-return-joined states."""
    script = (
        "import numpy as np, gpunet as gn\n"
        "m = gn.Sequential(gn.Linear(4, 8), gn.ReLU(), gn.Linear(8, 2))\n"
        "x = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32); y = (x[:, 0] > 0).astype(int)\n"
        "gn.Trainer(m, gn.losses.CrossEntropy(), gn.optim.SGD(m, lr=0.1)).fit((x, y), epochs=3, batch_size=8)\n"
    )
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", script], stderr=f, check=True,
                       env=dict(os.environ, GPUNET_BACKEND="cpu", PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 3 and all(re.match(rf"epoch {i}/3  \d+\.\ds  loss=\S+  accuracy=\S+  lr=0.1$", line)
                                   for i, line in enumerate(lines, 1)), lines


def test_labels_checked_once_then_the_step_calls_the_trusted_forward(data, mlp):
    (x, y), _ = data
    model = mlp()
    loss = gn.losses.CrossEntropy()
    calls = {"forward": 0, "forward_trusted": 0}
    for name in calls:
        def counted(*args, _name=name, _orig=getattr(loss, name)):
            calls[_name] += 1
            return _orig(*args)
        setattr(loss, name, counted)
    flags = []

    class Flag(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            flags.append((self.trainer.loss.check_labels, self.trainer.model.need_input_grad))

    Trainer(model, loss, gn.optim.SGD(model, lr=0.1), callbacks=[Flag()]).fit((x, y), epochs=1, batch_size=30,
                                                                              verbose=0)
    assert calls == {"forward": 0, "forward_trusted": 6}  # 180 examples, 6 batches, no per-batch check
    assert flags == [(True, False)]  # the loss is left as the user made it
    assert loss.check_labels is True and model.need_input_grad is True  # restored
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):  # by hand, the loss still checks
        loss(model(x[:4]), np.array([0, 1, 2, 3]))


def test_datasets_and_regression(rng, mlp):
    x = rng.normal(size=(64, 8)).astype(np.float32)
    ds = gn.data.Dataset(x, rng.integers(0, 3, 64))
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1))
    assert t.fit(ds, val=ds, epochs=1, verbose=0)["val_loss"][0] > 0
    assert t.predict(ds).shape == (64, 3)
    target = (x @ rng.normal(size=(8, 2))).astype(np.float32)
    reg = mlp(k=2)
    tr = Trainer(reg, gn.losses.MSE(), gn.optim.SGD(reg, lr=0.01), metrics=["mae"])
    h = tr.fit((x, target), epochs=5, batch_size=16, verbose=0)
    assert h["mae"][-1] < h["mae"][0]
    with pytest.raises(ValueError, match=r"targets of shape \(64, 3\).*\(N, 2\)"):
        tr.fit((x, rng.normal(size=(64, 3)).astype(np.float32)), verbose=0)


def test_penalties_are_logged_separately(data, mlp):
    (x, y), _ = data

    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, weight_decay=0.1, l1=0.01))
    h = t.fit((x, y), epochs=2, batch_size=32, verbose=0)
    w = model.arena.params[: model.arena.n_decay].astype(np.float64)
    assert h["l2_penalty"][-1] == pytest.approx(0.5 * 0.1 * np.sum(w * w), rel=1e-5)
    assert h["l1_penalty"][-1] == pytest.approx(0.01 * np.sum(np.abs(w)), rel=1e-5)
    assert h["total_loss"][-1] == pytest.approx(h["loss"][-1] + h["l2_penalty"][-1] + h["l1_penalty"][-1])
    # biases take no decay: the penalty covers the weights only (all of them with decay_all)
    assert model.arena.n_decay < model.arena.size
    t2 = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, weight_decay=0.1, decay_all=True))
    h2 = t2.fit((x, y), epochs=1, batch_size=32, verbose=0)
    p = model.arena.params.astype(np.float64)
    assert h2["l2_penalty"][-1] == pytest.approx(0.05 * np.sum(p * p), rel=1e-5)
    assert "l1_penalty" not in h2


# ---------------------------------------------------------------------- bad input
@pytest.fixture
def trainer(mlp):
    model = mlp()
    return Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1))


def test_wrong_feature_size(trainer, rng):
    x = rng.normal(size=(20, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"Trainer.fit\(train\): the model expects samples of shape \(8,\).*\(20, 5\)"):
        trainer.fit((x, np.zeros(20, np.int64)), verbose=0)
    good = rng.normal(size=(20, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"Trainer.fit\(val\)"):
        trainer.fit((good, np.ones(20, np.int64)), val=(x, np.ones(20, np.int64)), verbose=0)
    with pytest.raises(ValueError, match=r"Trainer.evaluate\(data\)"):
        trainer.evaluate((x, np.ones(20, np.int64)))


def test_feature_size_found_by_a_dry_forward(rng):
    model = gn.Sequential(gn.ReLU(), gn.Linear(8, 3))  # the first layer gives no input shape hint
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1))
    with pytest.raises(ValueError, match=r"forward pass on one sample of shape \(5,\) failed.*Linear"):
        t.fit((rng.normal(size=(10, 5)).astype(np.float32), np.zeros(10, np.int64)), verbose=0)


def test_bad_labels(trainer, rng):
    x = rng.normal(size=(20, 8)).astype(np.float32)
    with pytest.raises(TypeError, match="labels must be a 1-D integer array.*float32"):
        trainer.fit((x, np.zeros(20, np.float32)), verbose=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\).*from 0 to 3"):
        trainer.fit((x, np.arange(20) % 4), verbose=0)
    with pytest.raises(ValueError, match=r"from -1 to 1"):
        trainer.fit((x, np.arange(20) % 3 - 1), verbose=0)
    with pytest.raises(ValueError, match="x has 20 rows but y has 19"):
        trainer.fit((x, np.zeros(19, np.int64)), verbose=0)


def test_bad_inputs(trainer, rng):
    x = rng.normal(size=(20, 8)).astype(np.float32)
    y = np.zeros(20, np.int64)
    with pytest.raises(TypeError, match="x must be floating point, got uint8"):
        trainer.fit((x.astype(np.uint8), y), verbose=0)
    bad = x.copy()
    bad[3, 2] = np.nan
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match="2 non-finite values"):
        trainer.fit((bad, y), verbose=0)
    with pytest.raises(TypeError, match=r"\(x, y\) pair"):
        trainer.fit(x, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit((x, y), epochs=-1, verbose=0)


def test_unknown_monitor_key_lists_the_keys(trainer, data):
    train, val = data
    trainer.callbacks = [gn.callbacks.EarlyStopping(monitor="val_los")]
    trainer.callbacks[0].set_trainer(trainer)
    with pytest.raises(KeyError, match=r"'val_los' is not among the logged keys \['loss', 'accuracy', "
                                       r"'val_loss', 'val_accuracy', 'lr', 'time'\]"):
        trainer.fit(train, val=val, verbose=0)
    trainer.callbacks = [gn.callbacks.EarlyStopping(monitor="val_loss")]
    trainer.callbacks[0].set_trainer(trainer)
    with pytest.raises(KeyError, match=r"val_\* keys need fit\(..., val=...\)"):
        trainer.fit(train, verbose=0)


def test_batch_norm_and_dropout_follow_the_modes(data, mlp):
    train, val = data
    model = mlp(extra=(gn.BatchNorm1d(16), gn.Dropout(0.5)))
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.Adam(model, lr=1e-2, clip_norm=1.0))
    h = t.fit(train, val=val, epochs=3, batch_size=32, verbose=0)
    assert h["val_accuracy"][-1] > 0.8
    steps, stats = model[3].step, model[2].running_mean.copy()
    assert steps == 3 * 6  # one mask per training batch; validation and the data check draw none
    a, b = t.evaluate(val), t.evaluate(val)
    assert a == b and model[3].step == steps  # evaluation: no dropout, running statistics untouched
    np.testing.assert_array_equal(model[2].running_mean, stats)
    np.testing.assert_array_equal(t.predict(val[0]), t.predict(val[0]))


def test_losses_without_a_trusted_forward_and_subclasses_are_called_as_written(data, mlp):
    (x, y), _ = data
    calls = []

    class Plain:  # any callable with a backward: no forward_trusted
        check_labels = True  # class labels, as the Trainer's data check reads it

        def __init__(self):
            self.inner = gn.losses.CrossEntropy()

        def __call__(self, out, target):
            calls.append("plain")
            return self.inner(out, target)

        def backward(self):
            return self.inner.backward()

    class Smoothed(gn.losses.CrossEntropy):  # a subclass's own forward is not bypassed
        def forward(self, logits, target):
            calls.append("subclass")
            return super().forward(logits, target)

    for loss, tag in ((Plain(), "plain"), (Smoothed(), "subclass")):
        model = mlp()
        calls.clear()
        Trainer(model, loss, gn.optim.SGD(model, lr=0.1), metrics=[]).fit((x, y), epochs=1, batch_size=60,
                                                                          verbose=0)
        assert calls == [tag] * 3
