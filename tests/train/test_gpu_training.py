"""The Trainer and its callbacks on the GPU (CuPy): same results as on the CPU within float32
rounding, outputs on the device, resume, averaging, diagnostics. Run with GPUNET_REQUIRE_GPU=1
on a GPU machine; skipped elsewhere."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.optim import schedules as S
from gpunet.train import EMA, SWA, EarlyStopping, LRScheduler, ModelCheckpoint, TerminateOnNaN, Trainer

pytestmark = pytest.mark.gpu


def run(mlp, train, val, device, epochs=3, callbacks=(), resume=None, opt="adam"):
    gn.use(device)
    gn.seed(0)
    model = mlp()
    o = gn.optim.Adam(model, lr=1e-2, clip_norm=1.0) if opt == "adam" else gn.optim.SGD(model, lr=0.1)
    t = Trainer(model, gn.losses.CrossEntropy(), o, callbacks=list(callbacks), sync_every=2)
    h = t.fit(train, val=val, epochs=epochs, batch_size=32, verbose=0, resume=resume)
    return t, h


def test_gpu_training_matches_cpu(mlp, data):
    train, val = data
    tc, hc = run(mlp, train, val, "cpu", opt="sgd")
    tg, hg = run(mlp, train, val, "gpu", opt="sgd")
    assert tg.model.device == "gpu"
    # same initial weights and batches (both drawn on the host); float32 sums in another order
    for k, v in tc.model.state_dict().items():
        np.testing.assert_allclose(gn.to_numpy(tg.model.state_dict()[k]), v, rtol=1e-3, atol=1e-4, err_msg=k)
    for k in hc:
        np.testing.assert_allclose(hg[k], hc[k], rtol=1e-3, atol=1e-5, err_msg=k)
    out = tg.predict(val[0])
    assert gn.backend.is_gpu_array(out) and out.shape == (60, 3)
    ev = tg.evaluate(val)
    assert ev["loss"] == pytest.approx(hg["val_loss"][-1], rel=1e-6)


def test_gpu_callbacks_and_resume(mlp, data, tmp_path):
    train, val = data

    def callbacks(path):
        return [LRScheduler(S.Exponential(0.8)), EarlyStopping(patience=20), ModelCheckpoint(path), EMA(0.9)]

    full, hf = run(mlp, train, val, "gpu", epochs=4, callbacks=callbacks(tmp_path / "f.ck"))
    run(mlp, train, val, "gpu", epochs=2, callbacks=callbacks(tmp_path / "p.ck"))
    again, ha = run(mlp, train, val, "gpu", epochs=4, callbacks=callbacks(tmp_path / "a.ck"),
                    resume=tmp_path / "p.ck")
    assert ha.epochs == [0, 1, 2, 3]
    for k, v in full.model.state_dict().items():
        # exact unless a kernel sums in a varying order (atomics): allow float32 noise
        np.testing.assert_allclose(gn.to_numpy(again.model.state_dict()[k]), gn.to_numpy(v), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ha["loss"], hf["loss"], rtol=1e-4)


def test_gpu_swa_and_diagnostics(mlp, data):
    from gpunet import diagnostics as D

    train, val = data
    diag = D.Diagnostics(every=3, warn=False)
    swa = SWA(start_epoch=1)
    t, h = run(mlp, train, val, "gpu", epochs=3, callbacks=[swa, diag], opt="sgd")
    assert swa.n_averaged == 2 and len(diag.records) == 6
    rep = D.signal_propagation(t.model, gn.to_device(val[0]))
    assert np.isfinite(rep.act_std).all()


def test_gpu_terminate_on_nan(mlp, data):
    (x, y), _ = data
    gn.use("gpu")
    model = mlp()
    model[0].bias[0] = np.float32(np.inf)
    term = TerminateOnNaN()
    t = Trainer(model, gn.losses.CrossEntropy(), gn.optim.SGD(model, lr=0.1, nonfinite="ignore"), callbacks=[term])
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN"):
        t.fit((x, y), epochs=2, batch_size=20, verbose=0)
    assert (term.report.kind, term.report.layer, term.report.step) == ("parameter", "0", 0)
