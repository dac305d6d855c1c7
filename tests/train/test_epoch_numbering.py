"""One epoch numbering: every number a person reads counts from 1 (progress lines, messages,
warnings, History.epochs, the CSV log, plots, checkpoint names and metadata); hooks and schedules
receive the 0-based index."""
import csv
import re
import warnings

import numpy as np
import pytest

import gpunet as gn
from gpunet.train import SWA, Callback, CSVLogger, EarlyStopping, History, ModelCheckpoint, Trainer
from gpunet.train import checkpoint as ck


class Scripted(Callback):
    """Overwrites val_loss with a scripted sequence, so that the best epoch is known."""

    order = -10

    def __init__(self, values):
        self.values, self.indices = list(values), []

    def on_epoch_end(self, epoch, logs):
        self.indices.append(epoch)
        logs["val_loss"] = self.values[epoch]


def test_one_run_numbers_every_epoch_from_one(mlp, data, tmp_path, capsys):
    train, val = data
    model = mlp()
    script = Scripted([0.9, 0.7, 0.5, 0.6, 0.65, 0.8])  # best: the 3rd epoch; stop after the 5th
    es = EarlyStopping(patience=2)
    cbs = [script, es, CSVLogger(tmp_path / "log.csv"), ModelCheckpoint(str(tmp_path / "e{epoch:03d}.gnck"))]
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=cbs)
    h = t.fit(train, val=val, epochs=6, batch_size=60, verbose=2)
    out, err = capsys.readouterr()

    assert script.indices == [0, 1, 2, 3, 4]                       # hooks: 0-based indices
    assert h.epochs == [1, 2, 3, 4, 5] and h.num_epochs == 5        # what a person reads: 1-based
    assert re.findall(r"^epoch (\d)/6 ", err, re.M) == ["1", "2", "3", "4", "5"]
    assert (es.best_epoch, es.stopped_epoch) == (3, 5)
    assert out.strip() == ("EarlyStopping: stopped after epoch 5; best val_loss 0.5 at epoch 3; "
                           "weights restored")
    assert h.restored_epoch == 3
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[2]["val_loss"]) == 0.5
    # the file named for the best epoch holds the best epoch's weights, which the model ended with
    best = ck.load(tmp_path / "e003.gnck")
    assert best["epoch"] == 3 and best["history"]["epochs"] == [1, 2, 3]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, best["model"][k])


def test_early_stopping_is_silent_with_verbose_0_and_speaks_without_stopping(mlp, data, capsys):
    train, val = data
    for verbose, expect in ((0, ""), (1, "EarlyStopping: best val_loss 0.5 at epoch 2; weights restored")):
        model = mlp()
        t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1),
                    callbacks=[Scripted([0.9, 0.5, 0.6]), EarlyStopping(patience=5, verbose=verbose)])
        t.fit(train, val=val, epochs=3, batch_size=60, verbose=0)
        assert capsys.readouterr().out.strip() == expect


def test_start_from_epoch_leaves_the_first_epochs_unmonitored(mlp, data, capsys):
    train, val = data
    model = mlp()
    es = EarlyStopping(patience=1, start_from_epoch=2)
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1),
                callbacks=[Scripted([0.1, 0.9, 0.8, 0.85, 0.7]), es])
    h = t.fit(train, val=val, epochs=5, batch_size=60, verbose=0)
    # epochs 1 and 2 are not monitored (0.1 would have stopped it at once)
    assert (es.best_epoch, es.stopped_epoch, h.num_epochs) == (3, 4, 4)
    with pytest.raises(ValueError, match="start_from_epoch must be an integer >= 0"):
        EarlyStopping(start_from_epoch=-1)


def test_plot_marks_the_restored_epoch(mlp, data, tmp_path, monkeypatch):
    train, val = data
    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1),
                callbacks=[Scripted([0.9, 0.5, 0.6, 0.7]), EarlyStopping(patience=2, verbose=0)])
    h = t.fit(train, val=val, epochs=4, batch_size=60, verbose=0)
    lines = []
    from matplotlib.axes import Axes

    real = Axes.axvline
    monkeypatch.setattr(Axes, "axvline", lambda self, x, **kw: lines.append((x, kw.get("label"))) or real(self, x, **kw))
    h.plot(tmp_path / "curves.png")
    assert lines and all(line == (2, "restored (epoch 2)") for line in lines)
    assert (tmp_path / "curves.png").stat().st_size > 0
    plotted = []
    monkeypatch.setattr(Axes, "plot", lambda self, xs, *a, **kw: plotted.append(list(xs)) or [])
    h.plot(tmp_path / "again.png")
    assert plotted[0] == [1, 2, 3, 4]  # the x axis counts epochs from 1


def test_history_round_trip_and_older_checkpoints(tmp_path):
    h = History()
    h.append(1, {"loss": 1.0})
    h.append(2, {"loss": 0.5})
    h.restored_epoch = 1
    back = History.from_dict(h.to_dict())
    assert back.epochs == [1, 2] and back.restored_epoch == 1 and back.num_epochs == 2
    old = {"data": {"loss": [1.0, 0.5]}, "epochs": [0, 1]}  # written before 1-based numbering
    assert History.from_dict(old).epochs == [1, 2]


def test_swa_start_epoch_is_a_count_and_a_run_too_short_says_so(mlp, data):
    train, val = data
    model = mlp()
    swa = SWA(start_epoch=1)
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[swa])
    t.fit(train, epochs=3, batch_size=60, verbose=0)
    assert swa.n_averaged == 2  # epochs 2 and 3

    model = mlp()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[SWA(start_epoch=10)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.fit(train, epochs=2, batch_size=60, verbose=0)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("start_epoch=10 but fit runs 2 epochs" in m and "epoch 11" in m for m in msgs), msgs
    assert any("no epoch was averaged" in m and "after epoch 2" in m for m in msgs), msgs
