"""Resuming: a CPU run stopped after epoch k and resumed from its checkpoint ends with exactly the
weights (bit for bit), batch-norm statistics, dropout and other random streams, optimizer state
and history of an uninterrupted run."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.layers.base import Layer
from gpunet.optim import schedules as S
from gpunet.train import checkpoint as ck
from gpunet.train import EMA, EarlyStopping, LRScheduler, ModelCheckpoint, Trainer


class Noise(Layer):
    """Adds N(0, 0.1²) noise in training, drawn from a counter (seed, step) like dropout's masks;
    its step counter is the layer's random state."""

    def __init__(self):
        super().__init__()
        self.step = 0

    def forward(self, x):
        if not self.training:
            return x
        noise = np.random.default_rng([gn.backend.get_seed(), self.step]).normal(0, 0.1, x.shape)
        self.step += 1
        return x + noise.astype(x.dtype)

    def backward(self, dy):
        return dy

    def get_rng_state(self):
        return {"step": self.step}

    def set_rng_state(self, state):
        self.step = int(state["step"])


def build(mlp):
    """Linear, ReLU, BatchNorm1d (running statistics), Dropout (a mask stream), a noise layer, Linear."""
    return mlp(h=16, extra=(gn.BatchNorm1d(16), gn.Dropout(0.3), Noise()))


def make_trainer(mlp, path, schedule, ema=True):
    model = build(mlp)
    opt = gn.optim.Adam(model, lr=1e-2, clip_norm=1.0, weight_decay=1e-3)
    cbs = [LRScheduler(schedule()), EarlyStopping(patience=50), ModelCheckpoint(path)] + ([EMA(0.9)] if ema else [])
    return Trainer(model, gn.losses.CrossEntropy(), opt, callbacks=cbs, sync_every=2)


@pytest.mark.parametrize("schedule", [lambda: S.LinearWarmup(S.Exponential(0.8), warmup=2),
                                      lambda: S.OneCycle(0.05, total_steps=24)], ids=["per_epoch", "per_step"])
def test_resume_is_bitwise_exact(mlp, data, tmp_path, schedule):
    train, val = data  # 180 examples, batches of 32: 6 steps per epoch

    gn.seed(1)
    full = make_trainer(mlp, tmp_path / "full.ck", schedule)
    h_full = full.fit(train, val=val, epochs=4, batch_size=32, verbose=0)

    gn.seed(1)
    part = make_trainer(mlp, tmp_path / "part.ck", schedule)
    part.fit(train, val=val, epochs=2, batch_size=32, verbose=0)  # the run that was stopped

    gn.seed(77)  # a new process: other seed, other initial weights, fresh optimizer and callbacks
    np.random.default_rng().normal(size=10)
    again = make_trainer(mlp, tmp_path / "again.ck", schedule)
    h = again.fit(train, val=val, epochs=4, batch_size=32, verbose=0, resume=tmp_path / "part.ck")

    assert h.epochs == [1, 2, 3, 4] and again.global_step == full.global_step == 24
    for k in h_full:
        if k != "time":  # wall time differs from run to run
            assert h[k] == h_full[k], k  # every logged value, exactly
    # the EMA callback leaves the averaged weights in the model at the end, so compare both
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(again.model.state_dict()[k], v, err_msg=k)
    a, b = full.optimizer.state_dict(), again.optimizer.state_dict()
    assert a["steps"] == b["steps"] and a["lr"] == b["lr"]
    for k in a["state"]:
        np.testing.assert_array_equal(a["state"][k], b["state"][k], err_msg=k)
    assert full.callbacks[0].state_dict() == again.callbacks[0].state_dict()  # EarlyStopping's counters
    assert again.model[4].step == full.model[4].step == 24  # the layers' random state
    assert again.model[3].get_rng_state() == full.model[3].get_rng_state()  # dropout's counter
    assert full.model[3].step == 24
    # the checkpoints written after the last epoch hold the same state (but for the file names)
    c1, c2 = ck.load(tmp_path / "full.ck"), ck.load(tmp_path / "again.ck")
    for c in (c1, c2):
        c["history"]["data"].pop("time")  # wall time differs from run to run
    assert ck.dumps({k: v for k, v in c1.items() if k != "callbacks"}) == \
        ck.dumps({k: v for k, v in c2.items() if k != "callbacks"})
    assert ck.dumps([c for c in c1["callbacks"] if c["type"] != "ModelCheckpoint"]) == \
        ck.dumps([c for c in c2["callbacks"] if c["type"] != "ModelCheckpoint"])


def test_resume_when_already_done_trains_nothing(mlp, data, tmp_path):
    train, val = data
    t = make_trainer(mlp, tmp_path / "a.ck", lambda: S.Exponential(0.9), ema=False)
    t.fit(train, val=val, epochs=2, batch_size=32, verbose=0)
    t2 = make_trainer(mlp, tmp_path / "b.ck", lambda: S.Exponential(0.9), ema=False)
    h = t2.fit(train, val=val, epochs=2, batch_size=32, verbose=0, resume=tmp_path / "a.ck")
    assert h["loss"] == t.history["loss"] and t2.global_step == 12
    for k, v in t.model.state_dict().items():  # EarlyStopping restored the same best epoch in both
        np.testing.assert_array_equal(t2.model.state_dict()[k], v)
