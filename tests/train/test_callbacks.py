"""Callbacks on scripted loss sequences, and inside real (tiny) training runs."""
import csv
import math
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet.layers.base import Layer
from gpunet.optim import schedules as S
from gpunet.train import (CSVLogger, EarlyStopping, LRScheduler, ModelCheckpoint, NonFiniteLossError,
                          TerminateOnNaN, Trainer)


class FakeTrainer:
    """What callbacks use of a Trainer, driven by scripted logs."""

    def __init__(self, model=None, keys=("loss", "val_loss", "val_accuracy", "lr")):
        self.model = model
        self.history = gn.train.History()
        self.optimizer = gn.optim.SGD(model, lr=0.1) if model is not None else None
        self.keys = list(keys)
        self.stop_training = False
        self.saved = []
        self.current_epoch = 0

    def log_keys(self):
        return self.keys

    def save_checkpoint(self, path):
        self.saved.append(path)
        with open(path, "w") as f:
            f.write("x")


def drive(trainer, callbacks, values, key="val_loss"):
    """Run epochs whose logs[key] follow ``values``; the model's weights are filled with the epoch
    number so a restore can be checked. Returns the number of epochs run."""
    for cb in callbacks:
        cb.set_trainer(trainer)
        cb.reset()
        cb.on_train_begin({"initial_epoch": 0})
    ran = 0
    for epoch, v in enumerate(values):
        if trainer.stop_training:
            break
        trainer.current_epoch = epoch
        if trainer.model is not None:
            trainer.model.arena.params[...] = epoch
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        logs = {k: 0.0 for k in trainer.keys}
        logs[key] = v
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        ran += 1
    for cb in callbacks:
        cb.on_train_end({})
    return ran


@pytest.fixture
def fake(mlp):
    return FakeTrainer(mlp())


# ---------------------------------------------------------------------- early stopping
def test_early_stopping_patience(fake):
    es = EarlyStopping(patience=2, restore_best=False)
    assert drive(fake, [es], [1.0, 0.8, 0.85, 0.9, 0.7, 0.6]) == 4
    assert (es.best, es.best_epoch, es.stopped_epoch) == (0.8, 2, 4)  # 1-based epoch numbers
    assert float(fake.model.arena.params[0]) == 3  # not restored


def test_early_stopping_patience_zero_and_counter_reset(fake):
    es = EarlyStopping(patience=0)
    assert drive(fake, [es], [1.0, 0.9, 0.9]) == 3  # epoch 2 does not improve: stop after it
    fake.stop_training = False
    es = EarlyStopping(patience=2)
    # bad, improve (resets the count), bad, bad -> stop after epoch 4
    assert drive(fake, [es], [1.0, 1.1, 0.5, 0.6, 0.6, 0.1]) == 5
    assert es.best_epoch == 3 and es.stopped_epoch == 5


def test_early_stopping_min_delta(fake):
    es = EarlyStopping(patience=1, min_delta=0.1)
    assert drive(fake, [es], [1.0, 0.95, 0.5]) == 2  # 0.95 is not 0.1 better than 1.0
    fake.stop_training = False
    es = EarlyStopping(patience=1, min_delta=0.1)
    assert drive(fake, [es], [1.0, 0.85, 0.8, 0.1]) == 3
    assert es.best == 0.85 and es.best_epoch == 2


def test_early_stopping_restores_best_weights(fake):
    es = EarlyStopping(patience=2, restore_best=True)
    drive(fake, [es], [1.0, 0.7, 0.75, 0.8, 0.1])
    assert es.best_epoch == 2 and es.stopped_epoch == 4
    for name, p in fake.model.named_parameters():
        assert np.all(p == 1), name  # the weights of epoch 1, not of epoch 3


def test_early_stopping_mode_auto_max_for_accuracy(fake):
    es = EarlyStopping(monitor="val_accuracy", patience=2)
    assert es.mode == "max"
    drive(fake, [es], [0.5, 0.6, 0.6, 0.55, 0.9], key="val_accuracy")
    assert es.best == 0.6 and es.stopped_epoch == 4
    assert all(np.all(p == 1) for _, p in fake.model.named_parameters())
    assert EarlyStopping(monitor="val_loss").mode == "min"


def test_early_stopping_nan_is_no_improvement_and_baseline(fake):
    es = EarlyStopping(patience=1)
    assert drive(fake, [es], [1.0, math.nan, 0.5]) == 2
    fake.stop_training = False
    es = EarlyStopping(patience=2, baseline=0.5)
    assert drive(fake, [es], [0.9, 0.8, 0.4]) == 2  # neither epoch beats the baseline
    assert es.best_epoch == 2 and not es.beat_baseline
    assert all(np.all(p == 1) for _, p in fake.model.named_parameters())  # epoch 2's weights (index 1), restored


def test_early_stopping_baseline_resets_patience_only_when_beaten(fake, capsys):
    es = EarlyStopping(patience=2, baseline=0.5)
    # 0.7 is a new best but not under the baseline, so it counts as a bad epoch; 0.45 beats both
    assert drive(fake, [es], [0.7, 0.45, 0.46, 0.47, 0.1]) == 4
    assert (es.best, es.best_epoch, es.beat_baseline) == (0.45, 2, True)
    assert "best val_loss 0.45 at epoch 2; weights restored" in capsys.readouterr().out
    fake.stop_training = False
    es = EarlyStopping(patience=1, baseline=0.1)
    assert drive(fake, [es], [0.7, 0.8]) == 1
    assert "the baseline 0.1 was never beaten" in capsys.readouterr().out


def test_early_stopping_state_round_trip(fake):
    es = EarlyStopping(patience=3)
    drive(fake, [es], [1.0, 0.5, 0.6])
    es2 = EarlyStopping(patience=3)
    es2.load_state_dict(es.state_dict())
    assert (es2.best, es2.best_epoch, es2.wait) == (0.5, 2, 1)
    np.testing.assert_array_equal(es2.best_weights["0.weight"], es.best_weights["0.weight"])


def test_early_stopping_in_a_real_run_restores_the_best_epoch(data, mlp):
    train, val = data
    model = mlp()
    snaps = {}

    class Snap(gn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            snaps[epoch] = model.state_dict()

    es = EarlyStopping(patience=1, min_delta=10.0)  # nothing beats the first epoch by 10
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[es, Snap()])
    h = t.fit(train, val=val, epochs=10, batch_size=32, verbose=0)
    assert len(h["loss"]) == 2 and es.best_epoch == 1
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snaps[0][k])


# ---------------------------------------------------------------------- checkpoints
def test_model_checkpoint_best_only_and_keep(fake, tmp_path):
    mc = ModelCheckpoint(tmp_path / "e{epoch:02d}-{val_loss:.2f}.ck", save_best_only=True, keep=2)
    drive(fake, [mc], [1.0, 0.9, 0.95, 0.5, 0.6, 0.4])
    names = [os.path.basename(p) for p in fake.saved]
    assert names == ["e01-1.00.ck", "e02-0.90.ck", "e04-0.50.ck", "e06-0.40.ck"]
    assert sorted(os.listdir(tmp_path)) == ["e04-0.50.ck", "e06-0.40.ck"]  # keep=2
    mc2 = ModelCheckpoint(tmp_path / "last.ck")
    fake.saved.clear()
    drive(fake, [mc2], [1.0, 2.0, 3.0])
    assert len(fake.saved) == 3 and mc2.saved == [str(tmp_path / "last.ck")]


def test_model_checkpoint_bad_template(fake, tmp_path):
    mc = ModelCheckpoint(tmp_path / "{val_acc:.2f}.ck")
    mc.set_trainer(fake)
    with pytest.raises(ValueError, match="not a logged key.*available: epoch, loss, val_loss"):
        mc.on_train_begin({})
    with pytest.raises(ValueError, match="keep"):
        ModelCheckpoint(tmp_path / "x", keep=0)


def test_unknown_monitor_key_in_callbacks(fake):
    for cb in (EarlyStopping(monitor="val_acc"), ModelCheckpoint("x", monitor="val_acc", save_best_only=True),
               LRScheduler(S.ReduceOnPlateau(monitor="val_acc"))):
        cb.set_trainer(fake)
        with pytest.raises(KeyError, match=r"'val_acc' is not among the logged keys \['loss', 'val_loss', "
                                           r"'val_accuracy', 'lr'\]"):
            cb.on_train_begin({})


# ---------------------------------------------------------------------- learning-rate schedules
def test_lr_scheduler_per_epoch_in_a_run(data, mlp):
    train, _ = data
    model = mlp()
    used = []

    class Spy(gn.callbacks.Callback):
        def on_batch_end(self, step, logs=None):
            used.append(self.trainer.optimizer.lr)

    opt = gn.optim.SGD(model, lr=0.2)
    t = Trainer(model, gn.losses.CrossEntropy(), opt, callbacks=[LRScheduler(S.Exponential(0.5)), Spy()])
    h = t.fit(train, epochs=3, batch_size=60, verbose=0)
    assert h["lr"] == pytest.approx([0.2, 0.1, 0.05])
    assert used == pytest.approx([0.2] * 3 + [0.1] * 3 + [0.05] * 3)


def test_lr_scheduler_per_step(data, mlp):
    train, _ = data
    model = mlp()
    used = []

    class Spy(gn.callbacks.Callback):
        def on_batch_end(self, step, logs=None):
            used.append((step, self.trainer.optimizer.lr))

    sched = S.OneCycle(0.5, total_steps=9)
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.01),
                callbacks=[LRScheduler(sched), Spy()])
    t.fit(train, epochs=3, batch_size=60, verbose=0)
    assert [s for s, _ in used] == list(range(9))
    assert [lr for _, lr in used] == pytest.approx(sched.values(9))


def test_lr_scheduler_reduce_on_plateau_scripted(fake):
    r = S.ReduceOnPlateau(factor=0.5, patience=1)
    cb = LRScheduler(r)
    drive(fake, [cb], [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    # the rate of each epoch was set at its start from the values seen before it
    assert r.history == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    # reductions after epochs 2 and 5 (more than 1 epoch without improvement)
    assert r.values(8) == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 2)
    assert fake.optimizer.lr == pytest.approx(0.025)  # the rate epoch 6 ran at


# ---------------------------------------------------------------------- CSV
def test_csv_logger(data, mlp, tmp_path):
    train, val = data
    model = mlp()
    path = tmp_path / "log.csv"
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[CSVLogger(path)])
    h = t.fit(train, val=val, epochs=3, batch_size=32, verbose=0)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_loss"]) for r in rows] == h["val_loss"]  # written with full precision


def test_csv_logger_resume_drops_rows_after_the_checkpoint(fake, tmp_path):
    path = tmp_path / "log.csv"
    log = CSVLogger(path)
    drive(fake, [log], [1.0, 0.9, 0.8, 0.7])
    log.set_trainer(fake)
    log.on_train_begin({"initial_epoch": 2})
    log.on_epoch_end(2, {"loss": 0.0, "val_loss": 0.5, "val_accuracy": 0.0, "lr": 0.1})
    log.on_train_end()
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["epoch"]), float(r["val_loss"])) for r in rows] == [(1, 1.0), (2, 0.9), (3, 0.5)]


# ---------------------------------------------------------------------- non-finite losses
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:overflow encountered:RuntimeWarning")

class Boom(Layer):
    """Identity, except that its ``at``-th training forward (counted from 0) puts inf in the
    output; the counter is random-state-like, so checkpoints and replays restore it."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        if not self.training:
            return x
        self.calls += 1
        if self.calls - 1 == self.at:
            x = x.copy()
            x[0, 0] = np.inf
        return x

    def backward(self, dy):
        return dy

    def get_rng_state(self):
        return {"calls": self.calls}

    def set_rng_state(self, state):
        self.calls = int(state["calls"])


def test_terminate_on_nan_names_the_step_and_layer(data, mlp, tmp_path):
    (x, y), _ = data
    model = mlp(extra=(Boom(at=7),))
    term = TerminateOnNaN()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, nonfinite="ignore"),
                callbacks=[term, ModelCheckpoint(tmp_path / "c.ck")], sync_every=4)
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN"):
        h = t.fit((x, y), epochs=5, batch_size=20, verbose=0)  # 9 batches per epoch
    assert len(h["loss"]) == 1 and t.global_step == 8  # stopped at the read-back after step 8
    assert t.epoch == 0 and not t.epoch_complete  # the cut epoch does not count as done
    assert not (tmp_path / "c.ck").exists()  # nor is it checkpointed
    r = term.report
    assert r.step == 7 and r.kind == "activation" and r.layer == "2" and r.layer_type == "Boom"
    assert "at step 7: non-finite activation of layer '2' (Boom)" in str(r)
    for name, p in model.named_parameters():  # left with the weights before the bad update
        assert np.isfinite(p).all(), name


def test_terminate_on_nan_raise_and_locate_gradient(data, mlp):
    (x, y), _ = data

    class BadGrad(Boom):
        def forward(self, x):
            return x

        def backward(self, dy):
            self.calls += 1
            return dy * np.inf if self.calls - 1 == self.at else dy

    model = mlp(extra=(BadGrad(at=2),))
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, nonfinite="ignore"),
                callbacks=[TerminateOnNaN(raise_error=True)], sync_every=3)
    # the loss stays finite at step 2, the weights do not: the read-back after step 2 catches it
    with pytest.raises(NonFiniteLossError, match=r"weights hold non-finite values at step 3; stopping. "
                                                 r"Origin: at step 2: non-finite gradient of layer '2' \(BadGrad\)"
                       ) as info:
        t.fit((x, y), epochs=2, batch_size=20, verbose=0)
    assert info.value.report.kind == "gradient"


def test_skip_policy_leaves_the_bad_batch_out(data, mlp):
    (x, y), _ = data
    model = mlp(extra=(Boom(at=3),))
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1))  # nonfinite="skip" default
    with pytest.warns(RuntimeWarning, match="1 batches of epoch 1 had a non-finite loss"):
        h = t.fit((x, y), epochs=2, batch_size=20, verbose=0)
    assert h["skipped"][0] == 1 and math.isnan(h["skipped"][1])
    assert all(math.isfinite(v) for v in h["loss"])
    assert all(np.isfinite(p).all() for _, p in model.named_parameters())


def test_nan_without_terminate_warns_with_the_origin(data, mlp):
    (x, y), _ = data
    model = mlp(extra=(Boom(at=1),))
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, nonfinite="ignore"))
    with pytest.warns(RuntimeWarning, match=r"training loss of epoch 1 is nan; origin: non-finite parameter"):
        t.fit((x, y), epochs=1, batch_size=20, verbose=0)


def test_terminate_on_nan_with_non_finite_weights_from_the_start(data, mlp):
    (x, y), _ = data
    model = mlp()
    model[2].weight[1, 3] = np.nan
    term = TerminateOnNaN()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, nonfinite="ignore"), callbacks=[term])
    with pytest.warns(RuntimeWarning, match=r"Origin: at step 0: non-finite parameter of layer '2' \(Linear\): "
                                            r"2.weight already held 1 of 48"):
        t.fit((x, y), epochs=2, batch_size=20, verbose=0)
