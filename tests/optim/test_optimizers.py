"""gpunet.optim: the optimizer surface — closed-form steps, decay range, non-finite policies,
lr changes, state dicts, argument checks — on the CPU (and the GPU where marked)."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.ops.optim_update import fused_step

ALL = {
    "SGD": (gn.optim.SGD, dict(lr=0.1)),
    "Momentum": (gn.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "NormalizedSGD": (gn.optim.NormalizedSGD, dict(lr=0.1, momentum=0.5)),
    "Adagrad": (gn.optim.Adagrad, dict(lr_decay=0.1, initial_accumulator_value=0.5)),
    "RMSprop": (gn.optim.RMSprop, dict(momentum=0.5, centered=True)),
    "Adam": (gn.optim.Adam, dict(weight_decay=1e-2)),
    "AdamW": (gn.optim.AdamW, {}),
}


def _model(dtype="float32"):
    model = gn.Sequential(gn.Linear(9, 6, dtype=dtype), gn.ReLU(), gn.Linear(6, 4, dtype=dtype))
    model.flatten()
    return model


def _random_grads(model, rng, scale=1.0):
    """A random flat gradient, zero in the padding between views (as backward leaves it)."""
    a = model.arena
    g = (rng.standard_normal(a.size) * scale).astype(a.dtype)
    mask = np.zeros(a.size, bool)
    for e in a.entries:
        mask[e.offset:e.offset + e.size] = True
    g[~mask] = 0
    return g


def _grads(model, rng, scale=1.0):
    model.arena.grads[...] = _random_grads(model, rng, scale)


def test_sgd_closed_form_and_decay_range(rng):
    model = _model()
    a = model.arena
    assert 0 < a.n_decay < a.size
    _grads(model, rng)
    w0, g = a.params.astype(np.float64), a.grads.astype(np.float64)
    opt = gn.optim.SGD(model, lr=0.1, weight_decay=0.5, l1=0.01)
    assert opt.n_decay == a.n_decay
    opt.step()
    sign = np.sign(w0)
    want = w0 - 0.1 * g
    want[:a.n_decay] -= 0.1 * (0.5 * w0[:a.n_decay] + 0.01 * sign[:a.n_decay])
    np.testing.assert_allclose(a.params, want, rtol=1e-6, atol=1e-7)
    bias = a.entry("0.bias")
    assert bias.offset >= a.n_decay  # biases sit after the decay range ...
    np.testing.assert_allclose(model[0].bias, (w0 - 0.1 * g)[bias.offset:bias.offset + bias.size], rtol=1e-6)


def test_decay_all_decays_biases_too(rng):
    model = _model()
    a = model.arena
    _grads(model, rng)
    w0, g = a.params.astype(np.float64), a.grads.astype(np.float64)
    opt = gn.optim.SGD(model, lr=0.1, weight_decay=0.5, decay_all=True)
    assert opt.n_decay == a.size
    opt.step()
    np.testing.assert_allclose(a.params, w0 - 0.1 * (g + 0.5 * w0), rtol=1e-6, atol=1e-7)


def test_momentum_velocity_form_under_a_changing_lr(rng):
    model = _model()
    a = model.arena
    opt = gn.optim.SGD(model, lr=0.1, momentum=0.9)
    w, v = a.params.astype(np.float64), np.zeros(a.size)
    for lr in (0.1, 0.05, 0.2):
        _grads(model, rng)
        opt.lr = lr
        v = 0.9 * v - lr * a.grads
        w = w + v
        opt.step()
    np.testing.assert_allclose(a.params, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.state["velocity"], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_skip_policy_leaves_everything_untouched_and_counts(name, bad, rng):
    cls, kw = ALL[name]
    model = _model()
    opt = cls(model, clip_norm=1.0, **kw)
    _grads(model, rng)
    opt.step()
    params, state = model.arena.params.copy(), {k: v.copy() for k, v in opt.state.items()}
    _grads(model, rng)
    model.arena.grads[rng.integers(model.arena.num_parameters)] = bad
    opt.step()
    np.testing.assert_array_equal(model.arena.params, params)
    for k, v in opt.state.items():
        np.testing.assert_array_equal(v, state[k])
    assert (opt.steps, opt.skipped_steps, opt.iterations) == (1, 1, 2)
    _grads(model, rng)
    opt.step()
    assert (opt.steps, opt.skipped_steps) == (2, 1)
    assert np.isfinite(model.arena.params).all() and not np.array_equal(model.arena.params, params)


def test_skipped_step_does_not_advance_adam_bias_correction(rng):
    """Adam after (good, NaN, good) equals Adam after (good, good)."""
    grads = [_random_grads(_model(), rng) for _ in range(2)]
    results = []
    for with_bad in (False, True):
        gn.seed(0)
        model = _model()
        opt = gn.optim.Adam(model, lr=1e-2)
        seq = [grads[0], np.full_like(grads[0], np.nan), grads[1]] if with_bad else grads
        for g in seq:
            model.arena.grads[...] = g
            opt.step()
        results.append(model.arena.params.copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_raise_policy(rng):
    model = _model()
    opt = gn.optim.Adam(model, nonfinite="raise")
    _grads(model, rng)
    model.arena.grads[3] = np.nan
    before = model.arena.params.copy()
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        opt.step()
    np.testing.assert_array_equal(model.arena.params, before)


def test_ignore_policy_lets_nan_through(rng):
    model = _model()
    opt = gn.optim.SGD(model, lr=0.1, nonfinite="ignore")
    _grads(model, rng)
    model.arena.grads[3] = np.nan
    opt.step()
    assert np.isnan(model.arena.params[3]) and opt.steps == 1


def test_clip_norm_bounds_the_update(rng):
    model = _model()
    a = model.arena
    _grads(model, rng, scale=100.0)
    w0 = a.params.astype(np.float64)
    opt = gn.optim.SGD(model, lr=1.0, clip_norm=0.5)
    opt.step()
    assert abs(np.linalg.norm(a.params - w0) - 0.5) < 1e-5
    assert float(opt.grad_norm()) == pytest.approx(np.linalg.norm(a.grads.astype(np.float64)), rel=1e-12)


def test_lr_is_settable_and_checked():
    opt = gn.optim.Adam(_model())
    opt.lr = 0.5
    assert opt.lr == 0.5
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1e-3
    with pytest.raises(TypeError, match="lr"):
        opt.lr = "fast"


@pytest.mark.parametrize("name", sorted(ALL))
def test_state_dict_round_trips_exactly(name, rng):
    cls, kw = ALL[name]
    grads = [_random_grads(_model(), rng) for _ in range(6)]
    model = _model()
    opt = cls(model, clip_norm=2.0, **kw)
    for g in grads[:3]:
        model.arena.grads[...] = g
        opt.step()
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    for g in grads[3:]:
        model.arena.grads[...] = g
        opt.step()
    want = model.arena.params.copy()

    model2 = _model()
    model2.load_state_dict(saved_model)
    opt2 = cls(model2, lr=0.123)  # other hyper-parameters: the state dict brings its own
    # state buffers as float64 host arrays, as a checkpoint file may hold them
    opt2.load_state_dict({**saved_opt, "state": {k: np.asarray(v, np.float64) for k, v in saved_opt["state"].items()}})
    assert opt2.state_dict()["hyper"] == saved_opt["hyper"] and opt2.lr == saved_opt["lr"]
    for g in grads[3:]:
        model2.arena.grads[...] = g
        opt2.step()
    np.testing.assert_array_equal(model2.arena.params, want)
    assert (opt2.steps, opt2.iterations) == (opt.steps, opt.iterations)


def test_load_state_dict_rejects_a_mismatch():
    model = _model()
    sd = gn.optim.SGD(model, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="SGD"):
        gn.optim.Adam(model).load_state_dict(sd)
    other = gn.Sequential(gn.Linear(3, 2))
    with pytest.raises(ValueError, match="shape"):
        gn.optim.SGD(other, momentum=0.9).load_state_dict(sd)


@pytest.mark.parametrize("make, match", [
    (lambda m: gn.optim.SGD(m, lr=-0.1), "lr"),
    (lambda m: gn.optim.SGD(m, lr=float("nan")), "lr"),
    (lambda m: gn.optim.SGD(m, momentum=-0.5), "momentum"),
    (lambda m: gn.optim.SGD(m, nesterov=True), "nesterov"),
    (lambda m: gn.optim.Adam(m, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda m: gn.optim.Adam(m, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda m: gn.optim.Adam(m, eps=0.0), "eps"),
    (lambda m: gn.optim.Adagrad(m, eps=-1e-10), "eps"),
    (lambda m: gn.optim.RMSprop(m, alpha=1.5), "alpha"),
    (lambda m: gn.optim.NormalizedSGD(m, eps=0), "eps"),
    (lambda m: gn.optim.Adam(m, clip_norm=0.0), "clip_norm"),
    (lambda m: gn.optim.Adam(m, clip_norm=-1.0), "clip_norm"),
    (lambda m: gn.optim.Adam(m, clip_value=0.0), "clip_value"),
    (lambda m: gn.optim.Adam(m, weight_decay=-1e-4), "weight_decay"),
    (lambda m: gn.optim.Adam(m, l1=-1e-4), "l1"),
    (lambda m: gn.optim.Adam(m, nonfinite="warn"), "nonfinite"),
])
def test_bad_hyper_parameters_raise_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make(_model())


def test_bad_types_raise_type_errors():
    with pytest.raises(TypeError, match="betas"):
        gn.optim.Adam(_model(), betas=0.9)
    with pytest.raises(TypeError, match="gpunet model"):
        gn.optim.Adam(np.zeros(10, np.float32))


def test_params_and_grads_of_different_dtypes_are_rejected():
    model = _model()
    params = model.arena.params
    with pytest.raises(TypeError, match="gradients has dtype float64 but parameters has dtype float32"):
        fused_step("sgd", params, np.zeros(params.size), (), np.zeros(4), n_decay=0, lr=0.1)
    with pytest.raises(ValueError, match="elements"):
        fused_step("adam", params, params.copy(), (params.copy(), np.zeros(3, np.float32)), np.zeros(4), n_decay=0,
                   lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    with pytest.raises(ValueError, match="n_decay"):
        fused_step("sgd", params, params.copy(), (), np.zeros(4), n_decay=params.size + 1, lr=0.1)


def test_float64_models_train_too(rng):
    model = _model("float64")
    opt = gn.optim.Adam(model, clip_norm=1.0)
    _grads(model, rng)
    before = model.arena.params.copy()
    opt.step()
    assert model.arena.params.dtype == np.float64 and not np.array_equal(model.arena.params, before)


def test_ema_op_is_exported(rng):
    w = rng.standard_normal(17).astype(np.float32)
    ema = np.zeros(17, np.float32)
    assert gn.optim.ema(ema, w, 0.5) is ema
    np.testing.assert_allclose(ema, 0.5 * w, rtol=1e-6)


@pytest.mark.gpu
def test_params_and_grads_on_different_devices_are_rejected():
    import cupy

    params = cupy.zeros(16, cupy.float32)
    with pytest.raises(ValueError, match="device"):
        fused_step("sgd", params, np.zeros(16, np.float32), (), cupy.zeros(4), n_decay=0, lr=0.1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(ALL))
def test_gpu_step_matches_cpu_and_state_moves_across_devices(name, rng):
    cls, kw = ALL[name]
    grads = [_random_grads(_model(), rng) for _ in range(5)]
    results, saved = [], None
    for device in ("cpu", "gpu"):
        gn.seed(0)
        model = _model().to(device)
        opt = cls(model, clip_norm=1.0, **kw)
        for g in grads:
            model.arena.grads[...] = gn.to_device(g, device)
            opt.step()
        results.append(gn.to_numpy(model.arena.params))
        if device == "cpu":
            saved = opt.state_dict()
        else:
            opt.load_state_dict(saved)  # a CPU state loads on the GPU
            for k, v in opt.state.items():
                np.testing.assert_array_equal(gn.to_numpy(v), saved["state"][k])
    assert np.linalg.norm(results[1] - results[0]) <= 1e-5 * np.linalg.norm(results[0])


@pytest.mark.parametrize("name, make", [
    ("sgd_momentum", lambda m: gn.optim.SGD(m, lr=0.1, momentum=0.9)),
    ("rmsprop_momentum_centered", lambda m: gn.optim.RMSprop(m, lr=0.01, momentum=0.5, centered=True)),
])
def test_a_checkpoint_from_before_the_velocity_rename_still_loads(name, make):
    """The momentum state was called momentum_buffer until 2026-12-01 (it holds a velocity, not
    PyTorch's momentum buffer); checkpoints written then load into ``velocity``."""
    from pathlib import Path

    from gpunet.train import checkpoint

    path = Path(__file__).parent / "fixtures" / f"{name}_2026-12-01.ckpt"
    saved = checkpoint.load(path)["optimizer"]["state"]
    assert "momentum_buffer" in saved["state"] and "velocity" not in saved["state"]
    gn.seed(0)
    model = gn.Sequential(gn.Linear(4, 5), gn.ReLU(), gn.Linear(5, 3))
    opt = make(model)
    t = gn.Trainer(model, gn.losses.CrossEntropy(), opt)
    t.load_checkpoint(path)
    assert "velocity" in opt.state and "momentum_buffer" not in opt.state
    np.testing.assert_array_equal(opt.state["velocity"], saved["state"]["momentum_buffer"])
    assert opt.steps == saved["steps"] == 8 and t.epoch == 2
    data = (np.ones((8, 4), np.float32), np.zeros(8, np.int64))
    t.fit(data, epochs=3, batch_size=4, verbose=0, resume=path)  # resumes at epoch 3 of 3
    assert opt.steps == 10 and t.epoch == 3
