"""No host synchronization inside a training step: on the GPU, 100 steps of the Trainer's own
step function run with synchronization forbidden; on the CPU, every device read of a ``fit``
goes through ``backend.read_back`` and happens only at the planned read-backs (every
``sync_every`` batches, when something asks, and at the end of an epoch)."""
import io
from contextlib import redirect_stderr

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.train import Callback, TerminateOnNaN, Trainer


def _model(d=8, h=16, k=3):
    return gn.Sequential(gn.Linear(d, h), gn.BatchNorm1d(h), gn.ReLU(), gn.Dropout(0.2), gn.Linear(h, k))


@pytest.mark.gpu
def test_a_hundred_gpu_steps_never_synchronize(rng):
    import cupy
    import cupyx

    gn.use("gpu")
    try:
        gn.seed(0)
        model = _model()
        trainer = Trainer(model, gn.losses.CrossEntropy(), gn.optim.Adam(model, lr=1e-2, clip_norm=1.0),
                          metrics=["accuracy"])
        x = cupy.asarray(rng.standard_normal((640, 8)).astype(np.float32))
        y = cupy.asarray(rng.integers(0, 3, 640))
        model.train()
        model.need_input_grad = False
        trainer.train_step(x[:32], y[:32])  # compile and allocate outside the guard
        cupy.cuda.Device().synchronize()
        losses = []
        with cupyx.allow_synchronize(False):
            for i in range(100):
                j = (i % 20) * 32
                value, out = trainer.train_step(x[j:j + 32], y[j:j + 32])
                losses.append(value)
                trainer.metrics[0].keep(out, y[j:j + 32])
        values = cupy.stack(losses).get()  # the one read, after the steps
        assert np.isfinite(values).all() and trainer.optimizer.steps == 101
    finally:
        gn.use("cpu")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("callbacks, verbose, reads_per_epoch", [
    ([], 0, 1),                    # nothing asks: the epoch end only
    ([TerminateOnNaN()], 0, 3),    # 6 batches, sync_every=2: after batches 2, 4 and 6
    ([], 1, 3),                    # the progress bar reads at the same batches, whatever the clock says
])
def test_a_fit_reads_back_only_at_its_planned_read_backs(data, callbacks, verbose, reads_per_epoch, monkeypatch):
    (x, y), _ = data
    gn.seed(0)
    model = _model()
    reads = []
    real = backend.read_back
    monkeypatch.setattr(backend, "read_back", lambda a: reads.append(trainer.global_step) or real(a))
    steps = []

    class Steps(Callback):
        def on_batch_end(self, step, logs=None):
            steps.append(step)

    trainer = Trainer(model, gn.losses.CrossEntropy(), gn.optim.Adam(model, lr=1e-2, clip_norm=1.0),
                      callbacks=[*callbacks, Steps()], sync_every=2)
    with redirect_stderr(_Terminal()):
        trainer.fit((x, y), epochs=2, batch_size=30, verbose=verbose)
    assert steps == list(range(12))
    planned = {1: [6, 12], 3: [2, 4, 6, 8, 10, 12]}[reads_per_epoch]
    assert reads == planned
    assert trainer.step_stats["steps"] == 12.0 and trainer.step_stats["skipped"] == 0.0


def test_weight_decay_penalties_are_read_with_the_epoch_end(data):
    (x, y), _ = data
    model = _model()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, weight_decay=1e-3, l1=1e-4))
    logs = t.fit((x, y), epochs=1, batch_size=30, verbose=0).last()
    w = np.concatenate([a.ravel() for n, a in model.named_parameters() if n.endswith("weight") and a.ndim == 2])
    assert logs["l2_penalty"] == pytest.approx(0.5e-3 * float(w @ w), rel=1e-5)
    assert logs["l1_penalty"] == pytest.approx(1e-4 * float(np.abs(w).sum()), rel=1e-5)
