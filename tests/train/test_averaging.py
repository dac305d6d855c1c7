"""Model averaging: EMA and SWA arithmetic (against float64 closed forms), batch-norm
recomputation, ensembles."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.layers.base import Layer
from gpunet.train import EMA, SWA, Callback, Ensemble, Trainer
from gpunet.train.averaging import update_bn


def params64(model):
    return model.arena.params.astype(np.float64).copy()


# ---------------------------------------------------------------------- EMA
def test_ema_closed_form(mlp, rng):
    model = mlp()
    s0 = params64(model)
    ema = EMA(0.9, model=model)
    ws = []
    for _ in range(6):
        w = rng.normal(size=model.arena.size).astype(np.float32)
        model.arena.params[...] = w
        ws.append(w.astype(np.float64))
        ema.update()
    expect = 0.9 ** 6 * s0 + sum(0.1 * 0.9 ** (5 - t) * ws[t] for t in range(6))
    np.testing.assert_allclose(ema.shadow, expect, rtol=1e-5, atol=1e-6)  # float32 arithmetic, 6 steps
    assert ema.num_updates == 6


def test_ema_can_start_from_the_first_updated_weights(mlp, rng):
    """start="first_step": w̄₁ = w₁, then the same recursion (PyTorch's AveragedModel convention)."""
    model = mlp()
    ema = EMA(0.9, model=model, start="first_step")
    ws = []
    for _ in range(5):
        w = rng.normal(size=model.arena.size).astype(np.float32)
        model.arena.params[...] = w
        ws.append(w.astype(np.float64))
        ema.update()
    expect = 0.9 ** 4 * ws[0] + sum(0.1 * 0.9 ** (4 - t) * ws[t] for t in range(1, 5))
    np.testing.assert_allclose(ema.shadow, expect, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="start must be"):
        EMA(0.9, start="last")


@pytest.mark.oracle
def test_ema_first_step_matches_torch_averaged_model(rng):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    import gpunet as gn

    model = gn.Linear(3, 2)
    ema = EMA(0.8, model=model, start="first_step")
    net = torch.nn.Linear(3, 2)
    avg = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.8))
    for _ in range(4):
        w = rng.normal(size=model.arena.size).astype(np.float32)
        model.arena.params[...] = w
        ema.update()
        with torch.no_grad():
            net.weight.copy_(torch.from_numpy(model.weight.copy()))
            net.bias.copy_(torch.from_numpy(model.bias.copy()))
        avg.update_parameters(net)
    with ema.swapped():
        np.testing.assert_allclose(model.weight, avg.module.weight.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(model.bias, avg.module.bias.detach().numpy(), rtol=1e-6)


def test_ema_warmup_decay(mlp):
    ema = EMA(0.999, warmup=True, model=mlp())
    assert ema.current_decay() == pytest.approx(1 / 10)
    ema.num_updates = 90
    assert ema.current_decay() == pytest.approx(91 / 100)
    ema.num_updates = 10 ** 6
    assert ema.current_decay() == 0.999
    with pytest.raises(ValueError, match="decay"):
        EMA(1.0)


def test_ema_in_training(data, mlp):
    train, val = data
    model = mlp()
    after_step, during_val = [], []

    class Spy(Callback):
        order = 0  # before EMA (order 10): sees the weights the step produced

        def on_batch_end(self, step, logs=None):
            after_step.append(params64(model))

    class ValSpy(Callback):
        order = 20  # after EMA swapped its weights in

        def on_validation_begin(self, epoch):
            during_val.append((params64(model), ema.shadow.astype(np.float64).copy()))

    ema = EMA(0.8)
    start = params64(model)
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[ema, Spy(), ValSpy()])
    h = t.fit(train, val=val, epochs=2, batch_size=32, verbose=0)
    expect = start
    for w in after_step:
        expect = 0.8 * expect + 0.2 * w
    np.testing.assert_allclose(params64(model), expect, rtol=1e-5, atol=1e-6)  # applied at the end
    for live, shadow in during_val:
        np.testing.assert_array_equal(live, shadow)  # validation ran on the average
    assert len(during_val) == 2 and np.isfinite(h["val_loss"]).all()
    # and the live weights came back after validation: the last step's weights differ from the average
    assert not np.allclose(after_step[-1], expect)


def test_ema_swapped_context(mlp, rng):
    model = mlp()
    ema = EMA(0.5, model=model)
    live = params64(model)
    model.arena.params[...] += 1
    ema.update()
    with ema.swapped():
        np.testing.assert_allclose(params64(model), live + 0.5, rtol=1e-6)
    np.testing.assert_allclose(params64(model), live + 1, rtol=1e-6)


# ---------------------------------------------------------------------- SWA
def test_swa_averages_the_epoch_end_weights(data, mlp):
    train, _ = data
    model = mlp()
    snaps = []

    class Spy(Callback):
        def on_epoch_end(self, epoch, logs):
            snaps.append(params64(model))

    swa = SWA(start_epoch=1, freq=2, swa_lr=0.05)
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.2), callbacks=[swa, Spy()])
    h = t.fit(train, epochs=6, batch_size=32, verbose=0)
    assert swa.n_averaged == 3  # epochs 1, 3, 5
    np.testing.assert_allclose(params64(model), (snaps[1] + snaps[3] + snaps[5]) / 3, rtol=1e-5, atol=1e-7)
    assert h["lr"] == pytest.approx([0.2, 0.05, 0.05, 0.05, 0.05, 0.05])


class RunningMean(Layer):
    """A minimal batch-norm-like layer: y = x − running statistics are updated as PyTorch's
    BatchNorm (momentum m: r ← (1 − m) r + m·batch value, unbiased variance)."""

    def __init__(self, n, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.add_buffer("running_mean", np.zeros(n, np.float32))
        self.add_buffer("running_var", np.ones(n, np.float32))

    def forward(self, x):
        if self.training:
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * x.mean(axis=0)
            self.running_var[...] = (1 - m) * self.running_var + m * x.var(axis=0, ddof=1)
        return x

    def backward(self, dy):
        return dy


def test_update_bn_averages_per_batch_statistics(mlp, rng):
    bn = RunningMean(16)
    model = mlp(extra=(bn,))
    x = rng.normal(size=(100, 8)).astype(np.float32)
    bn.running_mean[...] = 7
    assert update_bn(model, x, batch_size=32) == 1
    h = np.maximum(x.astype(np.float64) @ model[0].weight.T.astype(np.float64) + model[0].bias, 0)
    chunks = [h[i:i + 32] for i in range(0, 100, 32)]
    np.testing.assert_allclose(bn.running_mean, np.mean([c.mean(0) for c in chunks], axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var, np.mean([c.var(0, ddof=1) for c in chunks], axis=0), rtol=1e-4)
    assert bn.momentum == 0.1 and model.training


def test_swa_recomputes_batch_norm_statistics_at_the_end(data, mlp):
    (x, y), _ = data
    bn = RunningMean(16)
    model = mlp(extra=(bn,))
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1), callbacks=[SWA(start_epoch=0)])
    t.fit((x, y), epochs=2, batch_size=32, verbose=0)
    expect = RunningMean(16)
    ref = mlp(extra=(expect,))
    ref.load_state_dict(model.state_dict())
    update_bn(ref, x, batch_size=256)
    np.testing.assert_allclose(bn.running_mean, expect.running_mean, rtol=1e-6)


# ---------------------------------------------------------------------- ensembles
def softmax64(z):
    z = z.astype(np.float64) - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_ensemble_averages_probabilities(mlp, rng):
    models = [mlp() for _ in range(3)]
    x = rng.normal(size=(10, 8)).astype(np.float32)
    ens = Ensemble(models, weights=[1, 2, 1])
    expect = sum(w * softmax64(m(x)) for w, m in zip([0.25, 0.5, 0.25], models))
    np.testing.assert_allclose(ens.predict_proba(x), expect, rtol=1e-5)
    np.testing.assert_allclose(ens(x), np.log(expect), rtol=1e-5, atol=1e-6)
    t = Trainer(ens, gn.losses.CrossEntropy(), None)
    y = rng.integers(0, 3, 10)
    ev = t.evaluate((x, y))
    assert ev["loss"] == pytest.approx(-np.mean(np.log(expect[np.arange(10), y])), rel=1e-5)
    assert ev["accuracy"] == pytest.approx(np.mean(expect.argmax(1) == y))
    np.testing.assert_allclose(Ensemble(models[:1]).predict_proba(x), softmax64(models[0](x)), rtol=1e-5)


def test_ensemble_bad_input(mlp):
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
    with pytest.raises(ValueError, match="weights must be 2 non-negative"):
        Ensemble([mlp(), mlp()], weights=[1, 2, 3])
    with pytest.raises(TypeError, match="model 1 is a str"):
        Ensemble([mlp(), "x"])
    with pytest.raises(NotImplementedError, match="train its members"):
        Ensemble([mlp()]).backward(None)
    with pytest.raises(ValueError, match="differ in shape"):
        Ensemble([mlp(k=3), mlp(k=4)])(np.ones((2, 8), np.float32))


@pytest.mark.oracle
def test_update_bn_matches_torch_swa_utils(rng):
    """gpunet's update_bn against torch.optim.swa_utils.update_bn on the same weights and batches."""
    import torch

    model = gn.Sequential(gn.Linear(6, 5), gn.BatchNorm1d(5), gn.ReLU(), gn.Linear(5, 4), gn.BatchNorm1d(4))
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                                 torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4))
    sd = model.state_dict()
    tmodel.load_state_dict({k: torch.from_numpy(np.asarray(v).copy()) for k, v in sd.items()})
    model[1].running_mean[...] = 3.0  # stale statistics, to be replaced
    x = rng.normal(size=(70, 6)).astype(np.float32)
    assert update_bn(model, x, batch_size=16) == 2
    loader = [torch.from_numpy(x[i:i + 16]) for i in range(0, 70, 16)]
    torch.optim.swa_utils.update_bn(loader, tmodel)
    for k in ("1.running_mean", "1.running_var", "4.running_mean", "4.running_var"):
        np.testing.assert_allclose(model.state_dict()[k], tmodel.state_dict()[k].numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)
    assert model[1].momentum == 0.1
