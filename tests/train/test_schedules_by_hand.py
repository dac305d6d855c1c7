"""Schedules as functions (LambdaLR), used by hand from an optimizer, and callbacks every N epochs."""
import csv
import math

import pytest

import gpunet as gn
from gpunet.optim import schedules
from gpunet.train import Trainer


def test_lrscheduler_takes_a_function_of_the_epoch_as_lambdalr(mlp, data):
    torch = pytest.importorskip("torch")
    model = mlp()
    t = Trainer(model, "cross_entropy", gn.optim.SGD(model, lr=0.2),
                callbacks=[gn.callbacks.LRScheduler(lambda epoch: 0.5 ** epoch)])
    h = t.fit(*data[0], epochs=4, batch_size=60, verbose=0)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2)
    ref = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.5 ** epoch)
    expected = []
    for _ in range(4):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert h["lr"] == pytest.approx(expected, rel=1e-12)


def test_lambda_checks_its_function_and_its_values():
    with pytest.raises(TypeError, match="one argument, the epoch index"):
        gn.callbacks.LRScheduler(lambda epoch, lr: lr * 0.9)  # Keras's signature
    with pytest.raises(TypeError, match="function of the epoch"):
        gn.callbacks.LRScheduler(3)
    s = schedules.Lambda(lambda t: -1.0 if t == 2 else 1.0, base_lr=0.1)
    assert s.values(2) == [0.1, 0.1]
    with pytest.raises(ValueError, match=r"returned -1.0 for t=2"):
        s(2)
    assert schedules.Lambda(math.exp, base_lr=1.0)(0) == 1.0  # a builtin without a signature


def test_a_schedule_by_hand_takes_its_base_from_the_optimizer(mlp):
    opt = gn.optim.SGD(mlp(), lr=0.4)
    s = schedules.Step(2, gamma=0.5)
    with pytest.raises(RuntimeError, match=r"schedule.apply\(optimizer, t\)"):
        s(0)
    assert [s.apply(opt, t) for t in range(5)] == [0.4, 0.4, 0.2, 0.2, 0.1]
    assert opt.lr == 0.1 and s.base_lr == 0.4  # the base is the rate at the first call, not the current one
    with pytest.raises(TypeError, match="expected a gpunet optimizer"):
        s.apply("sgd", 0)


def test_checkpoints_and_csv_logs_every_n_epochs(mlp, data, tmp_path):
    model = mlp()
    cbs = [gn.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.gnck"), save_best_only=False, every=2),
           gn.callbacks.CSVLogger(tmp_path / "log.csv", every=3)]
    Trainer(model, "cross_entropy", "adam", callbacks=cbs).fit(*data[0], val=data[1], epochs=6, batch_size=60,
                                                               verbose=0)
    assert sorted(p.name for p in tmp_path.glob("*.gnck")) == ["e2.gnck", "e4.gnck", "e6.gnck"]
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "log.csv"))] == ["3", "6"]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=r"CSVLogger: every must be a positive integer"):
            gn.callbacks.CSVLogger(tmp_path / "x.csv", every=bad)
        with pytest.raises(ValueError, match=r"ModelCheckpoint: every must be a positive integer"):
            gn.callbacks.ModelCheckpoint(str(tmp_path / "x.gnck"), every=bad)
