"""Keras habits in the Trainer: fit(x, y), validation_data, names for losses and optimizers, epoch time."""
import csv

import numpy as np
import pytest

import gpunet as gn
from gpunet.train import Trainer


def _fit(mlp, data, how):
    gn.seed(0)
    model = mlp()
    t = Trainer(model, "sparse_categorical_crossentropy", "adam")
    (x, y), (xv, yv) = data
    if how == "pair":
        h = t.fit((x, y), val=(xv, yv), epochs=2, batch_size=30, verbose=0)
    else:
        h = t.fit(x, y, validation_data=(xv, yv), epochs=2, batch_size=30, verbose=0)
    return h, model


def test_fit_x_y_and_validation_data_match_the_pair_and_val(mlp, data):
    h1, m1 = _fit(mlp, data, "pair")
    h2, m2 = _fit(mlp, data, "keras")
    for k in h1:
        if k != "time":
            assert h1[k] == h2[k], k
    assert all(np.array_equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))


def test_validation_split_with_x_y_and_evaluate_x_y(mlp, data):
    gn.seed(0)
    model = mlp()
    t = Trainer(model, "cross_entropy", "sgd")
    (x, y), _ = data
    h = t.fit(x, y, validation_split=0.25, epochs=1, batch_size=30, verbose=0)
    assert "val_loss" in h
    assert t.evaluate(x[135:], y[135:]) == pytest.approx({"loss": h["val_loss"][-1], "accuracy": h["val_accuracy"][-1]})
    assert t.evaluate((x, y)) == t.evaluate(x, y)


def test_the_second_positional_argument_is_y(mlp, data):
    model = mlp()
    t = Trainer(model, "cross_entropy", "adam")
    (x, y), val = data
    with pytest.raises(TypeError, match=r"second positional argument is y.*val=\(x_val, y_val\)"):
        t.fit((x, y), val, verbose=0)
    with pytest.raises(TypeError, match=r"fit\(x, y\), an \(x, y\) pair"):
        t.fit(x, verbose=0)
    with pytest.raises(ValueError, match="val or validation_data"):
        t.fit(x, y, val=val, validation_data=val, verbose=0)
    with pytest.raises(ValueError, match="or validation_split, not both"):
        t.fit(x, y, validation_data=val, validation_split=0.1, verbose=0)
    with pytest.raises(TypeError):
        t.fit(x, y, 3)  # epochs and the rest are keywords


def test_losses_and_optimizers_by_name_are_resolved_in_the_constructor(mlp):
    model = mlp()
    t = Trainer(model, "mse", "rmsprop", metrics=["mae"])
    assert isinstance(t.loss, gn.losses.MSE) and isinstance(t.optimizer, gn.optim.RMSprop)
    assert t.optimizer.model is model and t.optimizer.lr == gn.optim.RMSprop(model).lr
    for name, cls in (("adam", gn.optim.Adam), ("AdamW", gn.optim.AdamW), ("adagrad", gn.optim.Adagrad),
                      ("sgd", gn.optim.SGD)):
        assert type(Trainer(model, "cross_entropy", name).optimizer) is cls
    with pytest.raises(ValueError, match=r"Trainer\(optimizer\): unknown optimizer 'adamm'; .*'adam'"):
        Trainer(model, "cross_entropy", "adamm")
    with pytest.raises(ValueError, match=r"Trainer\(loss\): unknown loss 'crossentropyy'"):
        Trainer(model, "crossentropyy", "adam")
    with pytest.raises(ValueError, match=r"Trainer\(loss\): .*integer class labels.*sparse_categorical_crossentropy"):
        Trainer(model, "categorical_crossentropy", "adam")
    with pytest.raises(ValueError, match=r"Trainer\(metrics\): unknown metric"):
        Trainer(model, "cross_entropy", "adam", metrics=["accuracyy"])


def test_cross_entropy_after_a_softmax_layer_is_refused(mlp):
    model = gn.Sequential(mlp(), gn.Softmax())
    with pytest.raises(ValueError, match="ends with a Softmax layer"):
        Trainer(model, "sparse_categorical_crossentropy", "adam")


def test_epoch_time_in_history_progress_line_and_csv(mlp, data, tmp_path, capsys):
    model = mlp()
    log = tmp_path / "log.csv"
    t = Trainer(model, "cross_entropy", "adam", callbacks=[gn.callbacks.CSVLogger(str(log))])
    h = t.fit(*data[0], epochs=2, batch_size=30, verbose=2)
    err = capsys.readouterr().err
    assert len(h["time"]) == 2 and all(s > 0 for s in h["time"])
    assert f"epoch 2/2  {h['time'][1]:.1f}s" in err and "time=" not in err
    rows = list(csv.DictReader(open(log)))
    assert [float(r["time"]) for r in rows] == h["time"]
