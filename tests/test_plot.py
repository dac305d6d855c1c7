"""Figures (matplotlib Agg, no display): training curves, schedules, diagnostics."""
import functools
import sys

import numpy as np
import pytest

import gpunet as gn
from gpunet import diagnostics as D
from gpunet import plot
from gpunet.optim import schedules as S
from gpunet.train import History

PNG = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    from matplotlib.image import imread

    with open(path, "rb") as f:
        assert f.read(8) == PNG
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # something was drawn
    return img


def test_history_plot(tmp_path):
    h = History()
    for e in range(5):
        h.append(e, {"loss": 1 / (e + 1), "accuracy": 0.5 + e / 10, "l2_penalty": 0.01, "total_loss": 1 / (e + 1) + 0.01,
                     "val_loss": 1.2 / (e + 1), "val_accuracy": 0.45 + e / 10, "lr": 0.1 * 0.9 ** e})
    out = h.plot(tmp_path / "sub" / "curves.png")
    img = read_png(out)
    assert img.shape[1] > 2.5 * img.shape[0]  # three panels side by side: loss, accuracy, lr
    with pytest.raises(ValueError, match="empty"):
        History().plot(tmp_path / "x.png")


def test_history_plot_from_a_run_and_pdf(tmp_path, rng):
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    model = gn.Sequential(gn.Linear(4, 2))
    h = gn.Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1)).fit((x, y), val=(x, y), epochs=3,
                                                                                    verbose=0)
    h.plot(tmp_path / "h.pdf")
    assert (tmp_path / "h.pdf").read_bytes()[:4] == b"%PDF"


def test_schedule_signal_and_diagnostics_plots(tmp_path, rng):
    read_png(S.LinearWarmup(S.Cosine(40), warmup=5).bind(0.1).plot(tmp_path / "s.png", 50))
    x = rng.normal(size=(64, 16)).astype(np.float32)
    model = gn.Sequential(gn.Linear(16, 16, init=functools.partial(gn.init.gaussian, std=1.0)), gn.ReLU(),
                          gn.Linear(16, 3))
    read_png(D.signal_propagation(model, x).plot(tmp_path / "sig.png"))
    diag = D.Diagnostics(every=1, warn=False)
    y = rng.integers(0, 3, 64)
    gn.Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.01), callbacks=[diag]).fit(
        (x, y), epochs=2, batch_size=16, verbose=0)
    read_png(diag.plot(tmp_path / "diag.png"))
    with pytest.raises(ValueError, match="nothing was recorded"):
        plot.plot_diagnostics(D.Diagnostics(), tmp_path / "d.png")


def test_pyplot_is_never_imported():
    """Plots use the Agg canvas directly, so they work headless and leave a user's GUI backend alone."""
    import subprocess

    code = ("import gpunet as gn, sys; h = gn.train.History(); h.append(0, {'loss': 1.0, 'lr': 0.1}); "
            "h.plot(sys.argv[1]); assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-c", code, os.path.join(d, "a.png")], capture_output=True, text=True,
                           env={**os.environ, "MPLBACKEND": "", "DISPLAY": ""})
        assert r.returncode == 0, r.stderr
