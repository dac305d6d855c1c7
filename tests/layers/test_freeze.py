"""Layer.freeze / unfreeze: frozen parameters sit after the trained ones in the arena and the
fused step leaves them alone; eval_mode keeps a frozen layer in evaluation mode under train() and
fit; PyTorch (requires_grad_(False) and a module in eval mode) as the oracle."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from torch_steps import step_both


def _mlp():
    return gn.Sequential(gn.Linear(6, 8), gn.BatchNorm1d(8), gn.ReLU(), gn.Dropout(0.3), gn.Linear(8, 3))


def _batches(rng, n=4):
    return [(rng.standard_normal((16, 6)).astype(np.float32), rng.integers(0, 3, 16)) for _ in range(n)]


def _train(model, opt, batches):
    loss = gn.losses.CrossEntropy()
    model.train()
    for x, y in batches:
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()


def test_frozen_parameters_and_statistics_stay_while_the_rest_trains(rng):
    model = _mlp()
    model[0].freeze()
    model[1].freeze()  # batch norm in eval mode: running statistics fixed too
    opt = gn.optim.Adam(model, lr=0.05, weight_decay=0.1, clip_norm=0.5)
    before = {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
    _train(model, opt, _batches(rng))
    after = model.state_dict()
    for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
              "1.num_batches_tracked"):
        assert np.array_equal(before[k], after[k]), k
    for k in ("4.weight", "4.bias"):
        assert not np.array_equal(before[k], after[k]), k
    assert model.arena.frozen == ("0.weight", "0.bias", "1.weight", "1.bias")


def test_the_arena_puts_frozen_parameters_last():
    model = _mlp()
    model[0].freeze()
    a = model.arena
    names = [e.name for e in a.entries]
    assert names == ["4.weight", "1.weight", "1.bias", "4.bias", "0.weight", "0.bias"]
    first_frozen = a.entry("0.weight")
    assert a.n_train == first_frozen.offset and not first_frozen.trainable
    assert a.n_decay == a.entry("1.weight").offset  # 4.weight decays, then the trained no-decay ones
    assert a.trainable(a.grads).shape == (a.n_train,)
    assert "frozen from" in repr(a)
    values = {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
    model[0].unfreeze()
    assert model.arena is not a and model.arena.n_train == model.arena.size  # rebuilt, values kept
    assert all(np.array_equal(values[k], v) for k, v in model.state_dict().items())


@pytest.mark.oracle
@pytest.mark.parametrize("make_opt", [lambda m, t: (gn.optim.SGD(m, lr=0.1, momentum=0.9, weight_decay=1e-3,
                                                                 decay_all=True),
                                                    __import__("torch").optim.SGD(t, lr=0.1, momentum=0.9,
                                                                                  weight_decay=1e-3)),
                                      lambda m, t: (gn.optim.Adam(m, lr=0.01),
                                                    __import__("torch").optim.Adam(t, lr=0.01))])
def test_matches_torch_with_requires_grad_false_and_a_module_in_eval_mode(make_opt, rng):
    import torch

    ours = gn.Sequential(gn.Linear(6, 8), gn.BatchNorm1d(8), gn.ReLU(), gn.Linear(8, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                 torch.nn.Linear(8, 3))
    with torch.no_grad():
        for name, p in theirs.state_dict().items():
            p.copy_(torch.from_numpy(np.array(backend.to_numpy(ours.state_dict()[name]))))
    ours[0].freeze(eval_mode=False)  # requires_grad_(False): no update, mode unchanged
    ours[1].freeze()  # requires_grad_(False) and eval()
    for p in list(theirs[0].parameters()) + list(theirs[1].parameters()):
        p.requires_grad_(False)
    opt, topt = make_opt(ours, [p for p in theirs.parameters() if p.requires_grad])
    loss, tloss = gn.losses.CrossEntropy(), torch.nn.CrossEntropyLoss()
    for x, y in _batches(rng, 5):
        ours.train()
        theirs.train()
        theirs[1].eval()
        step_both(ours, opt, loss, theirs, topt, tloss, x, y)
    assert ours[0].training and not ours[1].training
    for name, p in theirs.state_dict().items():
        mine = backend.to_numpy(ours.state_dict()[name]).astype(np.float64)
        np.testing.assert_allclose(mine, p.numpy().astype(np.float64), rtol=2e-5, atol=1e-6, err_msg=name)


def test_eval_mode_survives_train_and_fit(rng):
    model = _mlp()
    model[3].freeze()  # a frozen dropout passes its input through
    model[1].freeze()
    model.train()
    assert [layer.training for _, layer in model.children()] == [True, False, True, False, True]
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    rm = backend.to_numpy(model[1].running_mean).copy()
    gn.Trainer(model, "cross_entropy", gn.optim.SGD(model, lr=0.1)).fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert not model[1].training and not model[3].training and model[0].training
    assert np.array_equal(rm, backend.to_numpy(model[1].running_mean))
    model[1].unfreeze()
    model.train()
    assert model[1].training and not model[1].frozen


def test_unfrozen_batch_norm_with_eval_mode_false_keeps_updating_its_statistics(rng):
    model = _mlp()
    model[1].freeze(eval_mode=False)
    opt = gn.optim.SGD(model, lr=0.1)
    w, rm = backend.to_numpy(model[1].weight).copy(), backend.to_numpy(model[1].running_mean).copy()
    _train(model, opt, _batches(rng, 2))
    assert np.array_equal(w, backend.to_numpy(model[1].weight))
    assert not np.array_equal(rm, backend.to_numpy(model[1].running_mean))


def test_clipping_and_decay_leave_frozen_gradients_out(rng):
    model = _mlp()
    model[0].freeze()
    x, y = _batches(rng, 1)[0]
    loss = gn.losses.CrossEntropy()
    loss(model(x), y)
    model.backward(loss.backward())
    a = model.arena
    trained = backend.to_numpy(a.grads[: a.n_train]).astype(np.float64)
    frozen = backend.to_numpy(a.grads[a.n_train:]).copy()
    assert np.abs(frozen).sum() > 0  # the gradient is computed (it flows on), then left out
    norm = float(gn.clip_grad_norm(model, 1e-3))
    assert norm == pytest.approx(np.linalg.norm(trained), rel=1e-6)
    assert np.array_equal(frozen, backend.to_numpy(a.grads[a.n_train:]))
    assert gn.optim.SGD(model, lr=0.1, decay_all=True).n_decay == a.n_train


def test_a_stale_optimizer_and_an_all_frozen_model_are_clear_errors(rng):
    model = _mlp()
    opt = gn.optim.Adam(model)
    other = _mlp()
    other_opt = gn.optim.Adam(other)
    model[0].freeze()
    batches = _batches(rng, 1)
    with pytest.raises(RuntimeError, match="frozen or unfrozen after this optimizer was created"):
        _train(model, opt, batches)
    _train(other, other_opt, batches)  # freezing another model leaves this one's arena and optimizer alone
    model.freeze()
    with pytest.raises(RuntimeError, match="every parameter of the model is frozen; nothing to train"):
        _train(model, gn.optim.Adam(model), batches)


def test_optimizer_state_needs_the_same_frozen_layers(rng):
    model = _mlp()
    model[0].freeze()
    opt = gn.optim.Adam(model, lr=0.01)
    _train(model, opt, _batches(rng, 2))
    state = opt.state_dict()
    assert state["frozen"] == ["0.weight", "0.bias"]
    twin = _mlp()
    twin.load_state_dict(model.state_dict())
    twin[0].freeze()
    same = gn.optim.Adam(twin, lr=0.01)
    same.load_state_dict(state)
    assert all(np.array_equal(same.state[k], opt.state[k]) for k in opt.state)
    plain = _mlp()
    with pytest.raises(ValueError, match=r"written with the parameters \['0.weight', '0.bias'\] frozen"):
        gn.optim.Adam(plain, lr=0.01).load_state_dict(state)


def test_update_bn_keeps_a_frozen_batch_norms_statistics(rng):
    from gpunet.train.averaging import update_bn

    model = gn.Sequential(gn.Linear(6, 8), gn.BatchNorm1d(8), gn.ReLU(), gn.Linear(8, 4), gn.BatchNorm1d(4))
    model[1].running_mean[...] = 3.0
    model[1].freeze()
    x = rng.standard_normal((64, 6)).astype(np.float32)
    assert update_bn(model, x, batch_size=16) == 1
    assert np.all(backend.to_numpy(model[1].running_mean) == 3.0)
    assert not np.allclose(backend.to_numpy(model[4].running_mean), 0.0)
